// Host-side checks of the CUDA side that need no GPU: how fused_adamw cuts tensors into
// multi-tensor launches (every build), and, in CUDA builds, that each glue function
// refuses bad shapes and dtypes with a message naming them, before it touches a device
// (so CPU tensors of the right shape get the device error, not a crash).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <map>
#include <string>

#include "cuda/fused_adamw_plan.hpp"

#ifdef TROUPE_WITH_CUDA
#include "cuda/decode_attention_cuda.hpp"
#include "cuda/decode_linear_cuda.hpp"
#include "cuda/fused_adamw_cuda.hpp"
#include "cuda/logprob_gather_cuda.hpp"
#include "cuda/sampling_cuda.hpp"
#endif

namespace troupe::kernels::cuda {
namespace {

/// Every chunk of every non-empty tensor exactly once, within the launch limits.
void check_plan(const std::vector<int64_t>& numels, int64_t chunk, size_t max_tensors, size_t max_blocks) {
  const auto plans = plan_adamw_launches(numels, chunk, max_tensors, max_blocks);
  std::map<std::pair<size_t, int64_t>, int> seen;
  for (const auto& p : plans) {
    REQUIRE(!p.blocks.empty());
    REQUIRE(p.blocks.size() <= max_blocks);
    REQUIRE(p.tensors.size() <= max_tensors);
    std::vector<bool> used(p.tensors.size(), false);
    for (const auto& b : p.blocks) {
      REQUIRE(b.slot >= 0);
      REQUIRE(static_cast<size_t>(b.slot) < p.tensors.size());
      used[b.slot] = true;
      const size_t t = p.tensors[b.slot];
      REQUIRE(b.chunk >= 0);
      REQUIRE(b.chunk * chunk < numels[t]);
      ++seen[std::make_pair(t, b.chunk)];
    }
    for (bool u : used) CHECK(u);  // no tensor rides along without a block
  }
  size_t expected = 0;
  for (size_t i = 0; i < numels.size(); ++i) {
    const int64_t chunks = numels[i] > 0 ? (numels[i] + chunk - 1) / chunk : 0;
    expected += static_cast<size_t>(chunks);
    for (int64_t c = 0; c < chunks; ++c) CHECK(seen[std::make_pair(i, c)] == 1);
  }
  CHECK(seen.size() == expected);
}

TEST_CASE("fused_adamw launch plan: every chunk once, within the launch limits", "[kernels][cuda_glue]") {
  check_plan({}, 4, 3, 5);
  check_plan({0, 0}, 4, 3, 5);
  check_plan({1}, 4, 3, 5);
  check_plan({4, 4, 4}, 4, 3, 5);            // exactly the tensor limit
  check_plan({4, 4, 4, 4, 1}, 4, 3, 5);      // over it
  check_plan({20}, 4, 3, 5);                 // exactly the block limit
  check_plan({21, 3, 0, 9}, 4, 3, 5);        // a tensor across launches
  check_plan({100, 1, 1, 1, 1, 1, 50}, 4, 3, 5);
  check_plan({321LL * 65536 + 3, 7, 65536}, 65536, 24, 320);
  std::vector<int64_t> many(100);
  for (size_t i = 0; i < many.size(); ++i) many[i] = static_cast<int64_t>((i * 7919) % 300000);
  check_plan(many, 65536, 24, 320);

  SECTION("a tensor over the block limit continues in slot 0 of the next launch") {
    const auto plans = plan_adamw_launches({12}, 4, 3, 2);  // 3 chunks, 2 blocks a launch
    REQUIRE(plans.size() == 2);
    CHECK(plans[0].tensors == std::vector<size_t>{0});
    CHECK(plans[0].blocks.size() == 2);
    CHECK(plans[1].tensors == std::vector<size_t>{0});
    REQUIRE(plans[1].blocks.size() == 1);
    CHECK(plans[1].blocks[0].slot == 0);
    CHECK(plans[1].blocks[0].chunk == 2);
  }
}

#ifdef TROUPE_WITH_CUDA

using Catch::Matchers::Contains;

torch::TensorOptions cpu_f32() { return torch::TensorOptions().dtype(torch::kFloat32); }

PackedLinear plain(int64_t n, int64_t k, torch::ScalarType dtype = torch::kFloat32) {
  PackedLinear p;
  p.data = torch::zeros({n, k}, cpu_f32().dtype(dtype));
  p.in_features = k;
  p.out_features = n;
  p.dtype = dtype;
  return p;
}

TEST_CASE("CUDA glue: decode_linear refuses bad shapes before touching a device", "[kernels][cuda_glue]") {
  const auto w = plain(50, 33);
  CHECK_THROWS_WITH(cuda::decode_linear(torch::zeros({3, 32}), w, Activation::None), Contains("(..., 33)"));
  CHECK_THROWS_WITH(cuda::decode_linear(torch::zeros({3, 33}, torch::kInt64), w, Activation::None),
                    Contains("float tensor"));
  auto packed_layout = w;
  packed_layout.data = torch::zeros({4, 33, 16});  // the CPU's (P, K, 16)
  CHECK_THROWS_WITH(cuda::decode_linear(torch::zeros({3, 33}), packed_layout, Activation::None),
                    Contains("plain (N, K)"));
  auto bad_bias = w;
  bad_bias.bias = torch::zeros({49});
  CHECK_THROWS_WITH(cuda::decode_linear(torch::zeros({3, 33}), bad_bias, Activation::None), Contains("bias"));
  auto wrong_dtype = w;
  wrong_dtype.dtype = torch::kBFloat16;
  CHECK_THROWS_WITH(cuda::decode_linear(torch::zeros({3, 33}), wrong_dtype, Activation::None),
                    Contains("packed as"));
  CHECK_THROWS_WITH(cuda::decode_linear(torch::zeros({3, 33}), w, Activation::None), Contains("CUDA device"));
  CHECK_THROWS_WITH(cuda::decode_gated_linear(torch::zeros({3, 33}), w, plain(51, 33)), Contains("packed alike"));
  CHECK_THROWS_WITH(cuda::decode_gated_linear(torch::zeros({3, 33}), w, w), Contains("CUDA device"));
}

TEST_CASE("CUDA glue: decode_attention refuses bad shapes before touching a device", "[kernels][cuda_glue]") {
  const auto q = torch::zeros({2, 8, 64});
  const auto kv = torch::zeros({2, 2, 16, 64});
  const auto mask = torch::ones({2, 16}, torch::kInt64);
  CHECK_THROWS_WITH(cuda::decode_attention(torch::zeros({2, 64}), kv, kv, 5, mask, 0.125), Contains("(B, H, D)"));
  CHECK_THROWS_WITH(cuda::decode_attention(q, kv, torch::zeros({2, 2, 15, 64}), 5, mask, 0.125), Contains("alike"));
  CHECK_THROWS_WITH(cuda::decode_attention(q, torch::zeros({2, 3, 16, 64}), torch::zeros({2, 3, 16, 64}), 5, mask, 0.1),
                    Contains("evenly"));
  CHECK_THROWS_WITH(cuda::decode_attention(q, kv, kv, 17, mask, 0.125), Contains("length 17"));
  CHECK_THROWS_WITH(cuda::decode_attention(q, kv, kv, 0, mask, 0.125), Contains("length 0"));
  CHECK_THROWS_WITH(cuda::decode_attention(q, kv, kv, 5, torch::ones({2, 4}, torch::kInt64), 0.125), Contains("L'"));
  CHECK_THROWS_WITH(cuda::decode_attention(q, kv, kv, 5, torch::ones({2, 16}), 0.125), Contains("integer or bool"));
  CHECK_THROWS_WITH(cuda::decode_attention(torch::zeros({2, 8, 300}), torch::zeros({2, 2, 16, 300}),
                                           torch::zeros({2, 2, 16, 300}), 5, mask, 0.1),
                    Contains("head dim 300"));
  CHECK_THROWS_WITH(cuda::decode_attention(q.to(torch::kHalf), kv, kv, 5, mask, 0.125), Contains("fp32 or bf16"));
  CHECK_THROWS_WITH(cuda::decode_attention(q, kv, kv, 5, mask, 0.125), Contains("CUDA device"));
}

TEST_CASE("CUDA glue: sample_next_tokens refuses bad arguments before touching a device", "[kernels][cuda_glue]") {
  auto gen = at::globalContext().defaultGenerator(torch::kCPU);
  SamplingParams greedy;
  CHECK_THROWS_WITH(cuda::sample_next_tokens(torch::zeros({4}), greedy, gen), Contains("(B, V)"));
  CHECK_THROWS_WITH(cuda::sample_next_tokens(torch::zeros({2, 4}, torch::kInt64), greedy, gen),
                    Contains("float tensor"));
  SamplingParams hot;
  hot.do_sample = true;
  hot.temperature = 0;
  CHECK_THROWS_WITH(cuda::sample_next_tokens(torch::zeros({2, 4}), hot, gen), Contains("temperature"));
  hot.temperature = 1;
  hot.top_p = 0;
  CHECK_THROWS_WITH(cuda::sample_next_tokens(torch::zeros({2, 4}), hot, gen), Contains("top_p"));
  CHECK_THROWS_WITH(cuda::sample_next_tokens(torch::zeros({2, 4}), greedy, gen), Contains("CUDA device"));
}

TEST_CASE("CUDA glue: the log-prob gather refuses bad shapes before touching a device", "[kernels][cuda_glue]") {
  const auto logits = torch::zeros({3, 10});
  const auto targets = torch::zeros({3}, torch::kInt64);
  CHECK_THROWS_WITH(cuda::logprob_gather_forward(torch::zeros({3}), targets, false, std::nullopt), Contains("(N, V)"));
  CHECK_THROWS_WITH(cuda::logprob_gather_forward(logits, torch::zeros({4}, torch::kInt64), false, std::nullopt),
                    Contains("(N) = (3)"));
  CHECK_THROWS_WITH(cuda::logprob_gather_forward(logits, torch::zeros({3}, torch::kInt32), false, std::nullopt),
                    Contains("int64"));
  CHECK_THROWS_WITH(cuda::logprob_gather_forward(logits, targets, true, -100), Contains("CUDA device"));
  const auto row = torch::zeros({3});
  CHECK_THROWS_WITH(cuda::logprob_gather_backward(logits, targets, torch::zeros({2}), row, {}, std::nullopt),
                    Contains("logsumexp"));
  CHECK_THROWS_WITH(cuda::logprob_gather_backward(logits, targets, row, row, torch::zeros({3, 1}), std::nullopt),
                    Contains("grad_entropy"));
  CHECK_THROWS_WITH(cuda::logprob_gather_backward(logits, targets, row, row, row, std::nullopt),
                    Contains("CUDA device"));
}

TEST_CASE("CUDA glue: fused_adamw refuses bad lists before touching a device", "[kernels][cuda_glue]") {
  const std::vector<torch::Tensor> one{torch::zeros({4})};
  AdamWHyper hyper;
  auto amsgrad = hyper;
  amsgrad.amsgrad = true;
  CHECK_THROWS_WITH(cuda::fused_adamw(one, one, one, one, {1}, amsgrad, {}), Contains("amsgrad"));
  CHECK_THROWS_WITH(cuda::fused_adamw(one, one, one, one, {1, 2}, hyper, {}), Contains("as many"));
  CHECK_THROWS_WITH(cuda::fused_adamw(one, {torch::zeros({5})}, one, one, {1}, hyper, {}), Contains("grads[0]"));
  CHECK_THROWS_WITH(cuda::fused_adamw(one, one, one, {torch::zeros({4}, torch::kDouble)}, {1}, hyper, {}),
                    Contains("exp_avg_sqs[0]"));
  CHECK_THROWS_WITH(cuda::fused_adamw(one, one, one, one, {1}, hyper, one), Contains("bf16_copies[0]"));
  CHECK_THROWS_WITH(cuda::fused_adamw(one, one, one, one, {0}, hyper, {}), Contains("steps[0]"));
  CHECK_THROWS_WITH(cuda::fused_adamw(one, one, one, one, {1}, hyper, {}), Contains("CUDA device"));
  CHECK_NOTHROW(cuda::fused_adamw(one, {torch::Tensor()}, one, one, {1}, hyper, {}));  // no grad: nothing to do
}

#endif  // TROUPE_WITH_CUDA

}  // namespace
}  // namespace troupe::kernels::cuda
