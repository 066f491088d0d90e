// The Hybrid Engine generating tensor-parallel (DeepSpeed-Chat's --inference_tp_size):
// ranks as threads gather each other's prompts, generate them as one batch with their
// slices of the weights, and each returns its own rows: the same tokens one engine
// generates for the gathered batch.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <future>

#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/models/lora.hpp>

#include "../models/model_fixtures.hpp"
#include "../models/thread_sum_group.hpp"

using namespace troupe;

namespace {

/// The engine's defaults without its log line per generation.
engine::HybridEngineOptions quiet_options() {
  engine::HybridEngineOptions options;
  options.log_switches = false;
  return options;
}

/// The same tiny Llama (grouped-query attention) with trained-looking LoRA adapters,
/// on every call.
models::CausalLM adapted_llama() {
  torch::manual_seed(21);
  auto model = models::make_causal_lm(test::tiny_config("llama"));
  models::apply_lora(*model, {4, 8.0, 0.0, ""});
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : model->linear_layers())
    if (linear->has_lora()) linear->lora_B.normal_(0, 0.5);
  return model;
}

struct RankPrompts {
  torch::Tensor ids, mask;
  uint64_t seed;
};

/// Each rank's engine generates its prompts in a group of `prompts.size()` ranks.
std::vector<models::GenerationResult> generate_on_ranks(const std::vector<RankPrompts>& prompts,
                                                        models::GenerationOptions options,
                                                        std::vector<engine::SwitchTimings>* timings = nullptr) {
  const int world = static_cast<int>(prompts.size());
  test::ThreadSumGroup group(world);
  std::vector<std::shared_ptr<engine::HybridEngine>> engines;
  for (int r = 0; r < world; ++r) {
    engines.push_back(std::make_shared<engine::HybridEngine>(adapted_llama(), quiet_options()));
    engines.back()->set_tensor_parallel(group.rank(r));
  }
  std::vector<std::future<models::GenerationResult>> ranks;
  for (int r = 0; r < world; ++r)
    ranks.push_back(std::async(std::launch::async, [&, r] {
      auto o = options;
      o.seed = prompts[static_cast<size_t>(r)].seed;
      return engines[static_cast<size_t>(r)]->generate(prompts[static_cast<size_t>(r)].ids, prompts[static_cast<size_t>(r)].mask, o);
    }));
  std::vector<models::GenerationResult> out;
  for (auto& rank : ranks) out.push_back(rank.get());
  if (timings)
    for (auto& e : engines) timings->push_back(e->last_timings());
  for (auto& e : engines) CHECK(e->model()->tensor_parallel_world() == 1);  // whole again for training
  return out;
}

}  // namespace

TEST_CASE("tensor-parallel generate: each rank gets its rows of what one engine generates for the gathered batch",
          "[engine][hybrid][tensor_parallel]") {
  torch::manual_seed(3);
  // Rank 0: two prompts of 5 positions (one left-padded); rank 1: one prompt of 3.
  auto ids0 = torch::randint(3, 50, {2, 5}, torch::kLong);
  auto mask0 = torch::tensor({1, 1, 1, 1, 1, 0, 0, 1, 1, 1}, torch::kLong).view({2, 5});
  ids0.masked_fill_(mask0 == 0, 0);
  auto ids1 = torch::randint(3, 50, {1, 3}, torch::kLong);
  auto mask1 = torch::ones({1, 3}, torch::kLong);
  // The gathered batch as one engine sees it: rank 1's prompt left-padded to 5.
  auto all_ids = torch::cat({ids0, torch::constant_pad_nd(ids1, {2, 0}, 0)});
  auto all_mask = torch::cat({mask0, torch::constant_pad_nd(mask1, {2, 0}, 0)});

  for (const bool sample : {false, true}) {
    DYNAMIC_SECTION((sample ? "sampled" : "greedy")) {
      models::GenerationOptions options;
      options.max_new_tokens = 8;
      options.do_sample = sample;
      options.eos_token_ids = {2};
      options.seed = 11;  // rank 0's: the group samples with it
      engine::HybridEngine alone(adapted_llama(), quiet_options());
      const auto want = alone.generate(all_ids, all_mask, options);

      std::vector<engine::SwitchTimings> timings;
      auto got = generate_on_ranks({{ids0, mask0, 11}, {ids1, mask1, 99}}, options, &timings);
      INFO("one engine " << want.sequences << "\nrank 0 " << got[0].sequences << "\nrank 1 " << got[1].sequences);
      CHECK(got[0].prompt_length == 5);
      CHECK(got[1].prompt_length == 3);
      CHECK(torch::equal(got[0].sequences, want.sequences.narrow(0, 0, 2)));
      CHECK(torch::equal(got[0].attention_mask, want.attention_mask.narrow(0, 0, 2)));
      CHECK(torch::equal(got[1].sequences, want.sequences.narrow(0, 2, 1).narrow(1, 2, want.sequences.size(1) - 2)));
      CHECK(torch::equal(got[1].attention_mask, want.attention_mask.narrow(0, 2, 1).narrow(1, 2, want.sequences.size(1) - 2)));
      for (const auto& t : timings) {
        CHECK(t.tensor_parallel == 2);
        CHECK(t.group_batch == 3);
        CHECK(t.kv_cache_bytes * 2 == alone.last_timings().kv_cache_bytes);  // half the heads on each rank
      }
      CHECK(timings[1].log_line().find("B=1 of 3 on 2 tensor-parallel ranks") != std::string::npos);
    }
  }
}

TEST_CASE("tensor-parallel generate: a rank with no prompts still takes part", "[engine][hybrid][tensor_parallel]") {
  torch::manual_seed(4);
  auto ids = torch::randint(3, 50, {2, 4}, torch::kLong);
  auto mask = torch::ones({2, 4}, torch::kLong);
  models::GenerationOptions options;
  options.max_new_tokens = 6;
  engine::HybridEngine alone(adapted_llama(), quiet_options());
  const auto want = alone.generate(ids, mask, options);
  auto got = generate_on_ranks({{ids, mask, 0}, {torch::zeros({0, 4}, torch::kLong), torch::zeros({0, 4}, torch::kLong), 0}},
                               options);
  CHECK(torch::equal(got[0].sequences, want.sequences));
  CHECK(got[1].sequences.size(0) == 0);
}

TEST_CASE("tensor-parallel generate refuses a model it cannot split", "[engine][hybrid][tensor_parallel]") {
  test::ThreadSumGroup group(4);
  engine::HybridEngine engine(adapted_llama());  // 2 key/value heads
  REQUIRE_THROWS_WITH(engine.set_tensor_parallel(group.rank(0)),
                      Catch::Contains("hybrid engine: tensor parallelism over 4 ranks needs num_key_value_heads (2)"));
}
