// decode_attention beyond the consistency rows: what it refuses, and the decode step
// of a model's attention (causal and padding mask at the last position) it stands for.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include <troupe/common/error.hpp>
#include <troupe/kernels/decode_attention.hpp>

using namespace troupe;

TEST_CASE("decode_attention equals the last query row of full masked attention", "[kernels][attention]") {
  torch::manual_seed(5);
  const int64_t b = 2, h = 4, h_kv = 2, s = 9, d = 64;
  auto q = torch::randn({b, h, s, d});
  auto k = torch::randn({b, h_kv, s, d});
  auto v = torch::randn({b, h_kv, s, d});
  auto mask = torch::ones({b, s}, torch::kLong);
  mask[1].narrow(0, 0, 4).fill_(0);  // row 1 left-padded
  // The models' prefill mask: causal and padding, every position sees itself.
  auto pos = torch::arange(s);
  auto allowed = torch::logical_or(torch::logical_and(pos.view({1, s}) <= pos.view({s, 1}),
                                                      (mask != 0).view({b, 1, 1, s})),
                                   pos.view({1, s}) == pos.view({s, 1}));  // (B, 1, S, S)
  auto additive = torch::zeros(allowed.sizes()).masked_fill_(allowed.logical_not(), -INFINITY);
  auto full = at::scaled_dot_product_attention(q, k, v, additive, 0.0, false, std::nullopt, true);  // (B, H, S, D)
  auto last = kernels::decode_attention(q.select(2, s - 1), k, v, s, mask, 1.0 / std::sqrt(double(d)));
  CHECK(torch::allclose(last, full.select(2, s - 1), 1e-5, 1e-5));
}

TEST_CASE("decode_attention refuses what it cannot compute", "[kernels][attention]") {
  auto q = torch::randn({2, 4, 64});
  auto k = torch::randn({2, 2, 8, 64});
  auto v = torch::randn({2, 2, 8, 64});
  auto mask = torch::ones({2, 8}, torch::kLong);
  CHECK_NOTHROW(kernels::decode_attention(q, k, v, 8, mask, 0.125));
  CHECK_THROWS_AS(kernels::decode_attention(q.to(torch::kHalf), k, v, 8, mask, 0.125), Error);
  CHECK_THROWS_AS(kernels::decode_attention(q, k.to(torch::kBFloat16), v, 8, mask, 0.125), Error);
  CHECK_THROWS_AS(kernels::decode_attention(q, k, v, 8, mask.to(torch::kFloat32), 0.125), Error);
  CHECK_THROWS(kernels::decode_attention(q, k, v, 9, mask, 0.125));                    // past the capacity
  CHECK_THROWS(kernels::decode_attention(q, k, v, 0, mask, 0.125));                    // nothing to attend
  CHECK_THROWS(kernels::decode_attention(q, k, v, 8, mask.narrow(1, 0, 7), 0.125));    // mask too short
  CHECK_THROWS(kernels::decode_attention(torch::randn({2, 3, 64}), k, v, 8, mask, 0.125));  // 3 heads over 2
}
