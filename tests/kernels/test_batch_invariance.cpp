// A row's result from the decode kernels does not depend on the other rows: not on how
// many there are (M), nor on their lengths. Continuous batching relies on it, so that
// a request's greedy answer is the same alone and in any batch.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <cstring>

#include <troupe/kernels/decode_attention.hpp>
#include <troupe/kernels/decode_linear.hpp>

using namespace troupe;

namespace {

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), static_cast<size_t>(ca.numel() * ca.element_size())) == 0;
}

}  // namespace

TEST_CASE("decode_linear computes each row the same whatever the number of rows", "[kernels][batch_invariance]") {
  torch::manual_seed(3);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (int64_t k : {64, 77, 768}) {
      INFO(c10::toString(dtype) << " K=" << k);
      const int64_t n = 100;
      auto w = kernels::pack_linear(torch::randn({n, k}), torch::randn({n}), dtype);
      auto g = kernels::pack_linear(torch::randn({n, k}), {}, dtype);
      auto u = kernels::pack_linear(torch::randn({n, k}), {}, dtype);
      auto x = torch::randn({20, k});  // (M, K)
      for (int64_t m = 1; m <= 20; ++m) {
        auto y = kernels::decode_linear(x.narrow(0, 0, m), w, kernels::Activation::Gelu);
        auto gated = kernels::decode_gated_linear(x.narrow(0, 0, m), g, u);
        for (int64_t r = 0; r < m; ++r) {
          INFO("M=" << m << " row " << r);
          CHECK(same_bits(y[r], kernels::decode_linear(x.narrow(0, r, 1), w, kernels::Activation::Gelu)[0]));
          CHECK(same_bits(gated[r], kernels::decode_gated_linear(x.narrow(0, r, 1), g, u)[0]));
        }
      }
    }
  }
}

TEST_CASE("decode_attention with per-row lengths reads each row's own positions only", "[kernels][batch_invariance]") {
  torch::manual_seed(4);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    INFO(c10::toString(dtype));
    const int64_t b = 5, h = 4, h_kv = 2, capacity = 40, d = 64;
    const std::vector<int64_t> lengths = {7, 31, 1, 16, 24};
    auto q = torch::randn({b, h, d}).to(dtype);
    auto k = torch::randn({b, h_kv, capacity, d}).to(dtype);
    auto v = torch::randn({b, h_kv, capacity, d}).to(dtype);
    const int64_t longest = 31;
    auto row_lengths = torch::tensor(lengths, torch::kLong);
    auto mask = (torch::arange(longest).view({1, longest}) < row_lengths.view({b, 1})).to(torch::kLong);
    const double scale = 1.0 / std::sqrt(double(d));
    auto out = kernels::decode_attention(q, k, v, longest, mask, scale, row_lengths);  // (B, H, D)
    auto reference = kernels::reference::decode_attention(q, k, v, longest, mask, scale, row_lengths);
    CHECK(torch::allclose(out.to(torch::kFloat32), reference.to(torch::kFloat32), 2e-2, 2e-2));
    // Garbage past a row's length changes nothing.
    auto k2 = k.clone(), v2 = v.clone();
    for (int64_t r = 0; r < b; ++r) {
      k2[r].narrow(1, lengths[r], capacity - lengths[r]).fill_(NAN);
      v2[r].narrow(1, lengths[r], capacity - lengths[r]).fill_(1e30);
    }
    CHECK(same_bits(kernels::decode_attention(q, k2, v2, longest, mask, scale, row_lengths), out));
    for (int64_t r = 0; r < b; ++r) {
      INFO("row " << r);
      // Alone, with a cache that holds just its positions: the same bits.
      auto alone = kernels::decode_attention(q.narrow(0, r, 1), k.narrow(0, r, 1), v.narrow(0, r, 1), lengths[r],
                                             torch::ones({1, lengths[r]}, torch::kLong), scale);
      CHECK(same_bits(out.narrow(0, r, 1), alone));
    }
  }
  auto q = torch::randn({2, 4, 64});
  auto k = torch::randn({2, 2, 8, 64});
  CHECK_THROWS(kernels::decode_attention(q, k, k, 8, {}, 0.125, torch::tensor({3, 9})));   // past length
  CHECK_THROWS(kernels::decode_attention(q, k, k, 8, {}, 0.125, torch::tensor({0, 2})));   // an empty row
  CHECK_THROWS(kernels::decode_attention(q, k, k, 8, {}, 0.125, torch::tensor({3})));      // not one per row
}
