#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <troupe/models/causal_lm.hpp>
#include <troupe/models/generation.hpp>

#include "model_fixtures.hpp"

using namespace troupe;

namespace {

/// Greedy decoding that recomputes the whole prefix every token (no cache).
torch::Tensor greedy_without_cache(models::CausalLMImpl& model, torch::Tensor ids, torch::Tensor mask, int64_t steps) {
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < steps; ++i) {
    auto next = model.forward(ids, mask).select(1, -1).argmax(-1, /*keepdim=*/true);  // (B, 1)
    ids = torch::cat({ids, next}, 1);
    mask = torch::cat({mask, torch::ones_like(next)}, 1);
  }
  return ids;
}

}  // namespace

TEST_CASE("KV-cache decoding equals full recompute", "[models][kv_cache]") {
  for (std::string family : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(0);
      auto model = models::make_causal_lm(test::tiny_config(family));
      model->eval();
      // Left-padded prompts of lengths 5, 3 and 1 (pad id 1 in columns that are masked).
      auto ids = torch::randint(3, 50, {3, 5}, torch::kLong);
      auto mask = torch::ones({3, 5}, torch::kLong);
      mask.index_put_({1, torch::indexing::Slice(0, 2)}, 0);
      mask.index_put_({2, torch::indexing::Slice(0, 4)}, 0);
      ids.masked_fill_(mask == 0, 1);

      models::GenerationOptions options;
      options.max_new_tokens = 12;
      options.eos_token_ids = {999};  // never stops early
      auto cached = models::generate(*model, ids, mask, options);
      auto recomputed = greedy_without_cache(*model, ids, mask, 12);
      CHECK(torch::equal(cached.sequences, recomputed));

      // The logits of the last step agree to float precision too.
      torch::NoGradGuard no_grad;
      auto all_mask = torch::cat({mask, torch::ones({3, 12}, torch::kLong)}, 1);
      auto full = model->forward(recomputed, all_mask);
      models::KVCache cache(model->config(), 3, 17, torch::kFloat32);
      model->forward(recomputed.narrow(1, 0, 10), all_mask.narrow(1, 0, 10), {}, &cache);
      auto tail = model->forward(recomputed.narrow(1, 10, 7), all_mask, {}, &cache);
      CHECK(torch::allclose(tail, full.narrow(1, 10, 7), 1e-5, 1e-5));
    }
  }
}

TEST_CASE("generation stops per sequence at EOS and pads after", "[models][generation]") {
  torch::manual_seed(1);
  auto model = models::make_causal_lm(test::tiny_config("llama"));
  model->eval();
  auto ids = torch::randint(3, 50, {4, 4}, torch::kLong);
  auto mask = torch::ones_like(ids);
  models::GenerationOptions options;
  options.max_new_tokens = 20;
  // Make the first greedy token of row 0 the EOS: stop row 0 immediately.
  torch::NoGradGuard no_grad;
  auto first = model->forward(ids, mask).select(1, -1).argmax(-1);
  options.eos_token_ids = {first[0].item<int64_t>()};
  options.pad_token_id = 0;
  auto out = models::generate(*model, ids, mask, options);
  CHECK(out.sequences.size(0) == 4);
  CHECK(out.sequences[0][4].item<int64_t>() == options.eos_token_ids[0]);
  CHECK(out.attention_mask[0][4].item<int64_t>() == 1);  // EOS itself is a real token
  if (out.sequences.size(1) > 5) {
    CHECK(out.sequences[0].narrow(0, 5, out.sequences.size(1) - 5).eq(0).all().item<bool>());
    CHECK(out.attention_mask[0].narrow(0, 5, out.sequences.size(1) - 5).eq(0).all().item<bool>());
  }
}

TEST_CASE("sampling is seeded and respects top-k", "[models][generation]") {
  torch::manual_seed(2);
  auto model = models::make_causal_lm(test::tiny_config("gpt2"));
  model->eval();
  auto ids = torch::randint(3, 50, {2, 3}, torch::kLong);
  auto mask = torch::ones_like(ids);
  models::GenerationOptions options;
  options.max_new_tokens = 8;
  options.do_sample = true;
  options.seed = 7;
  options.eos_token_ids = {999};
  auto a = models::generate(*model, ids, mask, options);
  auto b = models::generate(*model, ids, mask, options);
  CHECK(torch::equal(a.sequences, b.sequences));
  options.seed = 8;
  options.temperature = 5.0;
  auto c = models::generate(*model, ids, mask, options);
  CHECK_FALSE(torch::equal(a.sequences, c.sequences));

  // top_k = 1 is greedy whatever the temperature.
  options.top_k = 1;
  auto greedy_opts = options;
  greedy_opts.do_sample = false;
  CHECK(torch::equal(models::generate(*model, ids, mask, options).sequences,
                     models::generate(*model, ids, mask, greedy_opts).sequences));
}

TEST_CASE("top-p keeps the smallest set above p", "[models][generation]") {
  auto gen = at::globalContext().defaultGenerator(torch::kCPU).clone();
  models::GenerationOptions options;
  options.do_sample = true;
  options.top_p = 0.5;
  // Probabilities 0.6, 0.3, 0.1: only the first survives top_p = 0.5.
  auto logits = torch::log(torch::tensor({{0.6f, 0.3f, 0.1f}})).repeat({64, 1});
  CHECK(models::pick_next_tokens(logits, options, gen).eq(0).all().item<bool>());
  options.top_p = 0.8;  // first two survive
  auto picked = models::pick_next_tokens(logits, options, gen);
  CHECK(picked.lt(2).all().item<bool>());
  CHECK(picked.eq(1).any().item<bool>());
}
