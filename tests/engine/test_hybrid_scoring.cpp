// Scoring helpers of step 3 (log-probs, values, end scores) and the memory accounting.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <set>

#include <troupe/common/error.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/models/kv_cache.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>

#include "../models/model_fixtures.hpp"

using namespace troupe;

namespace {

/// The plain formula: log_softmax(logits[:, :-1]) gathered at sequences[:, 1:].
torch::Tensor plain_logprobs(const torch::Tensor& logits, const torch::Tensor& sequences) {
  const int64_t t = sequences.size(1) - 1;
  auto log_probs = logits.narrow(1, 0, t).to(torch::kFloat32).log_softmax(-1);  // (B, T - 1, V)
  return log_probs.gather(-1, sequences.narrow(1, 1, t).unsqueeze(-1)).squeeze(-1);
}

/// Positions where both the token and the one it is predicted from are real (B, T - 1).
torch::Tensor scored_positions(const torch::Tensor& mask) {
  const int64_t t = mask.size(1) - 1;
  return (mask.narrow(1, 0, t) != 0) & (mask.narrow(1, 1, t) != 0);
}

}  // namespace

TEST_CASE("scoring: chunked log-probs equal log_softmax + gather", "[engine][scoring]") {
  torch::manual_seed(1);
  auto logits = torch::randn({5, 7, 50}) * 4;               // (B, T, V)
  auto sequences = torch::randint(0, 50, {5, 7}, torch::kLong);  // (B, T)
  auto want = plain_logprobs(logits, sequences);
  for (int64_t rows : {1, 2, 5, 64}) {
    INFO("rows per chunk " << rows);
    engine::ScoringOptions options;
    options.rows_per_chunk = rows;
    auto got = engine::logprobs_from_logits(logits, sequences, options);
    REQUIRE(got.sizes() == want.sizes());
    CHECK(torch::allclose(got, want, 0, 1e-5));
  }
  // A budget of two rows' fp32 logits picks chunks of two.
  engine::ScoringOptions budget;
  budget.chunk_bytes = 2 * 6 * 50 * 4;
  CHECK(torch::allclose(engine::logprobs_from_logits(logits, sequences, budget), want, 0, 1e-5));
  // Half-precision logits are scored in fp32.
  auto half = logits.to(torch::kBFloat16);
  auto got = engine::logprobs_from_logits(half, sequences);
  CHECK(got.scalar_type() == torch::kFloat32);
  CHECK(torch::allclose(got, plain_logprobs(half, sequences), 0, 1e-5));
  CHECK_THROWS(engine::logprobs_from_logits(logits.narrow(1, 0, 6), sequences));
}

TEST_CASE("scoring: sequence log-probs equal transformers' logits through log_softmax", "[engine][scoring]") {
  for (std::string name : {"opt", "opt_postln", "gpt2", "llama"}) {
    DYNAMIC_SECTION(name) {
      auto model = models::load_pretrained(test::fixture_dir(name));
      auto expected = models::read_safetensors(test::fixture_dir(name) / "expected.safetensors");
      torch::NoGradGuard no_grad;
      for (std::string side : {"forward_left", "forward_right"}) {
        INFO(side);
        auto ids = expected.at(side + ".input_ids");       // (B, T)
        auto mask = expected.at(side + ".attention_mask");  // (B, T)
        engine::ScoringOptions one_row;
        one_row.rows_per_chunk = 1;
        auto got = engine::sequence_logprobs(*model, ids, mask, one_row);  // (B, T - 1)
        auto want = plain_logprobs(expected.at(side + ".logits"), ids);
        auto real = scored_positions(mask);
        CHECK((got - want).abs().masked_select(real).max().item<double>() < 1e-4);
        // Against our own logits the formula agrees to float rounding everywhere.
        CHECK(torch::allclose(got, plain_logprobs(model->forward(ids, mask), ids), 0, 1e-5));
        CHECK_FALSE(got.requires_grad());
      }
    }
  }
}

TEST_CASE("scoring: log-probs are differentiable when grad mode is on", "[engine][scoring]") {
  torch::manual_seed(2);
  auto model = models::make_causal_lm(test::tiny_config("llama"));
  auto ids = torch::randint(3, 50, {2, 6}, torch::kLong);
  auto mask = torch::ones({2, 6}, torch::kLong);
  engine::ScoringOptions options;
  options.rows_per_chunk = 1;
  auto logprobs = engine::sequence_logprobs(*model, ids, mask, options);
  REQUIRE(logprobs.requires_grad());
  logprobs.sum().backward();
  auto grad = model->input_embedding_weight().grad();
  REQUIRE(grad.defined());
  // The same gradient as the plain formula's.
  auto chunked_grad = grad.clone();
  model->zero_grad();
  plain_logprobs(model->forward(ids, mask), ids).sum().backward();
  CHECK(torch::allclose(chunked_grad, model->input_embedding_weight().grad(), 1e-5, 1e-6));
}

TEST_CASE("scoring: first_position scores the answer's columns alone, with the same values and gradients",
          "[engine][scoring]") {
  torch::manual_seed(4);
  auto model = models::make_causal_lm(test::tiny_config("opt"));
  model->eval();  // no dropout: the two passes must see the same model
  auto ids = torch::randint(3, 50, {3, 9}, torch::kLong);  // (B, T)
  auto mask = torch::ones({3, 9}, torch::kLong);
  mask[1][0] = 0;  // a left-padded prompt
  const int64_t first = 4;  // prompt length 5
  engine::ScoringOptions answer_only;
  answer_only.first_position = first;
  answer_only.rows_per_chunk = 2;
  auto got = engine::sequence_logprobs(*model, ids, mask, answer_only);  // (B, T - 1)
  REQUIRE(got.sizes() == torch::IntArrayRef({3, 8}));
  CHECK(got.narrow(1, 0, first).abs().max().item<double>() == 0.0);
  auto want = plain_logprobs(model->forward(ids, mask), ids);  // (B, T - 1)
  CHECK(torch::allclose(got.narrow(1, first, 8 - first), want.narrow(1, first, 8 - first), 0, 1e-5));
  // The gradient of the answer's log-probs is the plain formula's.
  got.sum().backward();
  auto grad = model->input_embedding_weight().grad().clone();
  model->zero_grad();
  want.narrow(1, first, 8 - first).sum().backward();
  CHECK(torch::allclose(grad, model->input_embedding_weight().grad(), 1e-5, 1e-6));
  answer_only.first_position = 8;
  CHECK_THROWS(engine::sequence_logprobs(*model, ids, mask, answer_only));
}

TEST_CASE("scoring: critic values drop the last position; end scores read the last answer token",
          "[engine][scoring]") {
  torch::manual_seed(3);
  auto critic = models::make_causal_lm(test::tiny_config("opt"));
  critic->add_value_head();
  critic->eval();
  torch::NoGradGuard no_grad;
  // Prompt length 3 (left padded), answers of 2 tokens, 0 tokens and the full 3.
  auto mask = torch::tensor({0, 1, 1, 1, 1, 0, 0,  //
                             1, 1, 1, 0, 0, 0, 0,  //
                             0, 0, 1, 1, 1, 1, 1},
                            torch::kLong)
                  .view({3, 7});
  auto ids = torch::randint(3, 50, {3, 7}, torch::kLong).masked_fill(mask == 0, 1);
  auto all_values = critic->values(critic->hidden_states({ids, mask, {}, nullptr}));  // (B, T)

  auto values = engine::sequence_values(*critic, ids, mask);
  CHECK(values.sizes() == torch::IntArrayRef{3, 6});
  CHECK(torch::allclose(values, all_values.narrow(1, 0, 6), 0, 1e-6));

  auto ends = engine::end_positions(mask, 3);
  CHECK(torch::equal(ends, torch::tensor({4, 2, 6}, torch::kLong)));
  auto scores = engine::end_scores(*critic, ids, mask, 3);
  auto want = torch::stack({all_values[0][4], all_values[1][2], all_values[2][6]});
  CHECK(torch::allclose(scores, want, 0, 1e-6));

  CHECK_THROWS(engine::end_positions(mask, 0));
  CHECK_THROWS(engine::end_positions(mask, 8));
  auto no_head = models::make_causal_lm(test::tiny_config("opt"));
  CHECK_THROWS(engine::sequence_values(*no_head, ids, mask));
}

TEST_CASE("memory: parameters, gradients, optimizer states and KV cache bytes", "[engine][memory]") {
  torch::manual_seed(4);
  auto config = test::tiny_config("llama");
  auto model = models::make_causal_lm(config);
  int64_t unique_bytes = 0;
  {
    std::set<const void*> seen;
    for (auto& p : model->parameters())
      if (seen.insert(p.data_ptr()).second) unique_bytes += p.numel() * 4;
  }
  auto before = engine::module_memory(*model);
  CHECK(before.parameter_bytes == unique_bytes);
  CHECK(before.trainable_parameter_bytes == unique_bytes);
  CHECK(before.gradient_bytes == 0);
  CHECK(engine::parameter_bytes(*model) == unique_bytes);

  torch::optim::AdamW adamw(model->parameters(), torch::optim::AdamWOptions(1e-3));
  auto ids = torch::randint(3, 50, {2, 5}, torch::kLong);
  model->forward(ids).sum().backward();
  adamw.step();
  auto after = engine::module_memory(*model, &adamw);
  CHECK(after.gradient_bytes == unique_bytes);
  CHECK(after.optimizer_state_bytes == 2 * unique_bytes);  // exp_avg and exp_avg_sq
  CHECK(after.total() == 4 * unique_bytes);

  // The formula equals what models::KVCache allocates (GQA: 2 kv heads of 4).
  models::KVCache cache(config, 3, 11, torch::TensorOptions().dtype(torch::kBFloat16));
  CHECK(engine::kv_cache_bytes(config, 3, 11, torch::kBFloat16) == cache.bytes());
  CHECK(engine::kv_cache_bytes(16, 512, 24, 12, 64, torch::kFloat16) == int64_t{2} * 24 * 16 * 12 * 512 * 64 * 2);
  CHECK_THROWS_AS(engine::kv_cache_bytes(-1, 1, 1, 1, 1, torch::kFloat32), Error);

  CHECK_FALSE(engine::device_memory_stats(torch::kCPU).has_value());
  CHECK(engine::format_bytes(512) == "512 B");
  CHECK(engine::format_bytes(3 << 20) == "3.0 MiB");
  CHECK(engine::format_bytes(int64_t{5} << 30) == "5.00 GiB");
}
