// A KV cache in another dtype than the model's (bf16 for an fp32 model), and the decode
// kernel reading it against SDPA over the same cache.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <troupe/models/causal_lm.hpp>
#include <troupe/models/generation.hpp>

#include "model_fixtures.hpp"

using namespace troupe;

namespace {

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

}  // namespace

TEST_CASE("a bf16 KV cache serves an fp32 model: decode kernel and SDPA agree over it", "[models][kv_cache]") {
  for (std::string family : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(11);
      auto model = models::make_causal_lm(test::tiny_config(family));
      model->eval();
      auto ids = torch::randint(3, 50, {3, 5}, torch::kLong);
      auto mask = torch::ones({3, 5}, torch::kLong);
      mask[1].narrow(0, 0, 2).fill_(0);
      mask[2].narrow(0, 0, 5).fill_(0);  // a row of padding only
      auto next = torch::randint(3, 50, {3, 1}, torch::kLong);
      auto mask2 = torch::cat({mask, torch::ones({3, 1}, torch::kLong)}, 1);

      models::KVCache bf16(model->config(), 3, 9, torch::kBFloat16);
      models::KVCache fp32(model->config(), 3, 9, torch::kFloat32);
      CHECK(bf16.dtype() == torch::kBFloat16);
      CHECK(bf16.bytes() * 2 == fp32.bytes());
      torch::Tensor kernel_step, fp32_step;
      {
        torch::NoGradGuard no_grad;
        model->forward(ids, mask, {}, &bf16);  // prefill: SDPA over the bf16 views made fp32
        model->forward(ids, mask, {}, &fp32);
      }
      models::KVCache bf16_again = bf16;  // the same storage and length
      {
        torch::NoGradGuard no_grad;
        kernel_step = model->forward(next, mask2, {}, &bf16);  // (B, 1, V) decode kernel
        fp32_step = model->forward(next, mask2, {}, &fp32);
      }
      CHECK(bf16.length() == 6);
      CHECK(bf16.layer_storage(0).length == 6);
      // With autograd on, the step runs SDPA over the same cache (its views made fp32).
      auto sdpa_step = model->forward(next, mask2, {}, &bf16_again).detach();
      CHECK(torch::allclose(kernel_step, sdpa_step, 1e-5, 1e-5));
      // bf16 storage rounds k and v: close to the fp32 cache, not equal.
      CHECK(relative_error(kernel_step, fp32_step) < 2e-2);

      // generate() runs over a caller's bf16 cache.
      models::KVCache for_generate(model->config(), 3, 5 + 6, torch::kBFloat16);
      models::GenerationOptions options;
      options.max_new_tokens = 6;
      options.eos_token_ids = {999};
      auto out = models::generate(*model, ids, mask, options, for_generate);
      CHECK(out.sequences.size(1) == 11);
      CHECK(out.sequences.lt(50).all().item<bool>());
    }
  }
}
