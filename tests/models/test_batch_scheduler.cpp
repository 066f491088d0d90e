// Continuous batching: requests that join and leave a running decode batch get the
// tokens generate() gives each of them alone, bit for bit.
#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <map>

#include <troupe/common/error.hpp>
#include <troupe/models/batch_scheduler.hpp>
#include <troupe/models/generation.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/models/kv_cache.hpp>

#include "bitwise.hpp"
#include "model_fixtures.hpp"

using namespace troupe;

namespace {

models::CausalLM tiny_model(const std::string& family) {
  torch::manual_seed(11);
  auto model = models::make_causal_lm(test::tiny_config(family));
  // Larger weights than the default init spread the logits, so greedy picks vary.
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.mul_(4.0);
  model->eval();
  return model;
}

std::vector<int64_t> prompt_of(int64_t length, int64_t salt) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < length; ++i) ids.push_back(3 + (i * 7 + salt * 13) % 45);
  return ids;
}

/// generate() on one prompt alone: the tokens after the prompt (EOS included).
std::vector<int64_t> alone(models::CausalLMImpl& model, const std::vector<int64_t>& prompt,
                           const models::GenerationOptions& options) {
  const auto t = static_cast<int64_t>(prompt.size());
  auto ids = torch::tensor(prompt, torch::kLong).view({1, t});
  auto out = models::generate(model, ids, torch::ones_like(ids), options);
  std::vector<int64_t> tokens;
  for (int64_t j = t; j < out.sequences.size(1); ++j)
    if (out.attention_mask[0][j].item<int64_t>() == 1) tokens.push_back(out.sequences[0][j].item<int64_t>());
  return tokens;
}

struct Collected {
  std::map<int, std::vector<int64_t>> tokens;
  std::map<int, models::FinishReason> finished;
};

models::BatchRequest request_for(int key, const std::vector<int64_t>& prompt, const models::GenerationOptions& options,
                                 Collected& out) {
  models::BatchRequest r;
  r.prompt_ids = prompt;
  r.options = options;
  r.on_token = [key, &out](int64_t token) {
    out.tokens[key].push_back(token);
    return true;
  };
  r.on_finish = [key, &out](models::FinishReason reason) { out.finished[key] = reason; };
  return r;
}

}  // namespace

TEST_CASE("a decode step over rows of different lengths computes each row as it computes alone, bit for bit",
          "[models][batch_scheduler]") {
  for (const std::string family : {"opt", "gpt2", "llama"}) {
    for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      INFO(family << " " << c10::toString(dtype));
      auto model = tiny_model(family);
      models::ScopedInferenceLayout layout(*model, dtype);
      c10::InferenceMode inference;
      const auto& config = model->config();
      const std::vector<int64_t> lengths = {5, 12, 1, 9, 3};
      const auto rows = static_cast<int64_t>(lengths.size());
      models::KVCache cache(config, 8, 32, torch::TensorOptions().dtype(dtype));
      std::vector<torch::Tensor> expected;
      std::vector<int64_t> next;
      for (int64_t r = 0; r < rows; ++r) {
        const auto prompt = prompt_of(lengths[r], r);
        auto ids = torch::tensor(prompt, torch::kLong).view({1, lengths[r]});
        auto view = cache.row_view(r);
        model->hidden_states({ids, torch::ones_like(ids), {}, &view});
        // Alone: the same prompt in a cache of its own, then one decode step.
        models::KVCache own(config, 1, 32, torch::TensorOptions().dtype(dtype));
        model->hidden_states({ids, torch::ones_like(ids), {}, &own});
        const int64_t token = 3 + r;
        next.push_back(token);
        auto step = torch::full({1, 1}, token, torch::kLong);
        auto hidden = model->hidden_states(
            {step, torch::ones({1, lengths[r] + 1}, torch::kLong), torch::full({1, 1}, lengths[r], torch::kLong), &own});
        expected.push_back(model->lm_logits(hidden.select(1, 0)));  // (1, V)
      }
      cache.set_row_lengths(lengths);
      const int64_t longest = cache.length();
      auto positions = torch::tensor(lengths, torch::kLong).view({rows, 1});
      auto mask = (torch::arange(longest + 1).view({1, longest + 1}) <= positions).to(torch::kLong);
      auto hidden = model->hidden_states({torch::tensor(next, torch::kLong).view({rows, 1}), mask, positions, &cache});
      auto logits = model->lm_logits(hidden.select(1, 0));  // (B, V)
      for (int64_t r = 0; r < rows; ++r) {
        INFO("row " << r);
        CHECK(test::bitwise_equal(logits.narrow(0, r, 1), expected[r]));
      }
      CHECK(cache.row_lengths() == std::vector<int64_t>{6, 13, 2, 10, 4});
    }
  }
}

TEST_CASE("rows joining and leaving mid-decode get generate()'s greedy tokens", "[models][batch_scheduler]") {
  for (const std::string family : {"opt", "gpt2", "llama"}) {
    INFO(family);
    auto model = tiny_model(family);
    models::BatchSchedulerOptions options;
    options.max_batch = 3;
    options.context = 48;
    Collected got;  // before the scheduler: it outlives the callbacks that write it
    models::BatchScheduler scheduler(model, options);
    struct Plan {
      int64_t prompt_length, max_new_tokens, submit_at_step;
    };
    const std::vector<Plan> plans = {{6, 12, 0}, {2, 4, 0}, {11, 9, 1}, {4, 15, 3}, {1, 7, 3}, {8, 3, 6}};
    std::vector<models::GenerationOptions> option_of;
    int submitted = 0;
    for (int step = 0; step < 200; ++step) {
      for (size_t i = 0; i < plans.size(); ++i) {
        if (plans[i].submit_at_step != step) continue;
        models::GenerationOptions o;
        o.max_new_tokens = plans[i].max_new_tokens;
        o.eos_token_ids = {2};
        option_of.resize(plans.size());
        option_of[i] = o;
        scheduler.submit(request_for(static_cast<int>(i), prompt_of(plans[i].prompt_length, static_cast<int64_t>(i)), o, got));
        ++submitted;
      }
      CHECK(scheduler.running() <= 3);
      if (!scheduler.step() && submitted == static_cast<int>(plans.size())) break;
    }
    REQUIRE(got.finished.size() == plans.size());
    for (size_t i = 0; i < plans.size(); ++i) {
      INFO("request " << i);
      CHECK(got.tokens[static_cast<int>(i)] ==
            alone(*model, prompt_of(plans[i].prompt_length, static_cast<int64_t>(i)), option_of[i]));
    }
    CHECK(scheduler.decode_steps() > 0);
    CHECK(scheduler.decode_rows() > scheduler.decode_steps());  // rows shared steps
  }
}

TEST_CASE("seeded sampling in a batch draws what generate() draws alone", "[models][batch_scheduler]") {
  auto model = tiny_model("llama");
  models::BatchSchedulerOptions options;
  options.max_batch = 4;
  options.context = 40;
  Collected got;  // before the scheduler: it outlives the callbacks that write it
  models::BatchScheduler scheduler(model, options);
  std::vector<models::GenerationOptions> option_of;
  for (int i = 0; i < 4; ++i) {
    models::GenerationOptions o;
    o.max_new_tokens = 10;
    o.do_sample = true;
    o.temperature = 0.8;
    o.top_k = i % 2 ? 5 : 0;
    o.top_p = i == 3 ? 0.9 : 1.0;
    o.seed = 100 + i;
    option_of.push_back(o);
    scheduler.submit(request_for(i, prompt_of(3 + i, i), o, got));
    scheduler.step();  // each joins a batch already decoding
  }
  while (scheduler.step()) {
  }
  for (int i = 0; i < 4; ++i) {
    INFO("request " << i);
    CHECK(got.tokens[i] == alone(*model, prompt_of(3 + i, i), option_of[i]));
  }
}

TEST_CASE("the scheduler admits in order, stops on request, frees cancelled rows and checks its input",
          "[models][batch_scheduler]") {
  auto model = tiny_model("opt");
  models::BatchSchedulerOptions options;
  options.max_batch = 2;
  options.context = 16;
  Collected got;  // before the scheduler: it outlives the callbacks that write it
  std::vector<int> order;
  models::BatchScheduler scheduler(model, options);
  models::GenerationOptions o;
  o.max_new_tokens = 50;
  o.eos_token_ids = {999};  // never: only the row's room or a stop ends it
  auto tracked = [&](int key, int64_t length) {
    auto r = request_for(key, prompt_of(length, key), o, got);
    auto inner = r.on_token;
    r.on_token = [&order, key, inner](int64_t t) {
      if (std::find(order.begin(), order.end(), key) == order.end()) order.push_back(key);
      return inner(t);
    };
    return r;
  };
  const auto a = scheduler.submit(tracked(0, 4));
  scheduler.submit(tracked(1, 4));
  scheduler.submit(tracked(2, 4));
  auto stopper = tracked(3, 4);
  auto inner = stopper.on_token;
  stopper.on_token = [inner, &got](int64_t t) { return inner(t) && got.tokens[3].size() < 2; };
  scheduler.submit(stopper);
  scheduler.step();
  CHECK(scheduler.running() == 2);
  CHECK(scheduler.waiting() == 2);
  scheduler.cancel(a);
  scheduler.step();
  CHECK(got.finished.at(0) == models::FinishReason::Cancelled);
  while (scheduler.step()) {
  }
  CHECK(order == std::vector<int>{0, 1, 2, 3});
  CHECK(got.finished.at(1) == models::FinishReason::Length);
  // 16 positions: 4 for the prompt, 12 generated tokens fed back, and the last one.
  CHECK(got.tokens.at(1).size() == 13);
  CHECK(got.finished.at(3) == models::FinishReason::Stop);
  CHECK(got.tokens.at(3).size() == 2);

  CHECK_THROWS_AS(scheduler.submit(request_for(9, {}, o, got)), Error);
  CHECK_THROWS_AS(scheduler.submit(request_for(9, prompt_of(16, 1), o, got)), Error);
  auto none = o;
  none.max_new_tokens = 0;
  CHECK_THROWS_AS(scheduler.submit(request_for(9, prompt_of(3, 1), none, got)), Error);
  scheduler.close();
  CHECK_THROWS_AS(scheduler.submit(request_for(9, prompt_of(3, 1), o, got)), Error);
  scheduler.run();  // returns at once: closed and nothing left
}

TEST_CASE("the KV cache memory limit lowers the batch", "[models][batch_scheduler]") {
  auto model = tiny_model("opt");
  models::BatchSchedulerOptions options;
  options.max_batch = 8;
  options.context = 16;
  const auto& c = model->config();
  const int64_t row = 2 * c.num_layers * c.num_kv_heads * c.head_dim * 16 * 4;
  options.max_cache_bytes = 3 * row + row / 2;
  models::BatchScheduler scheduler(model, options);
  CHECK(scheduler.max_batch() == 3);
  CHECK(scheduler.cache_bytes() == 3 * row);
  options.max_cache_bytes = row / 2;
  CHECK_THROWS_AS(models::BatchScheduler(model, options), Error);
}

TEST_CASE("the prefill budget admits whole prompts, at least one per step", "[models][batch_scheduler]") {
  auto model = tiny_model("gpt2");
  models::BatchSchedulerOptions options;
  options.max_batch = 4;
  options.context = 40;
  options.max_prefill_tokens = 10;
  Collected got;
  models::BatchScheduler scheduler(model, options);
  models::GenerationOptions o;
  o.max_new_tokens = 6;
  o.eos_token_ids = {999};
  const std::vector<int64_t> lengths = {12, 5, 4, 6};
  for (int i = 0; i < 4; ++i) scheduler.submit(request_for(i, prompt_of(lengths[i], i), o, got));
  scheduler.step();  // 12 tokens: over the budget, but the first prompt of a step always goes
  CHECK(scheduler.running() == 1);
  scheduler.step();  // 5 + 4 fit in 10, 6 more would not
  CHECK(scheduler.running() == 3);
  CHECK(scheduler.waiting() == 1);
  while (scheduler.step()) {
  }
  for (int i = 0; i < 4; ++i) {
    INFO("request " << i);
    CHECK(got.tokens[i] == alone(*model, prompt_of(lengths[i], i), o));
  }
}
