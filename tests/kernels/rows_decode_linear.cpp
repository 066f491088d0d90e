// Consistency rows for decode_linear and decode_gated_linear (CPU).
#include <torch/torch.h>

#include <troupe/kernels/decode_linear.hpp>

#include "consistency_table.hpp"

namespace {

using troupe::kernels::Activation;
using troupe::test::ConsistencyOutputs;
using troupe::test::ConsistencyRow;

const char* name_of(Activation a) {
  switch (a) {
    case Activation::None: return "none";
    case Activation::Relu: return "relu";
    case Activation::Gelu: return "gelu";
    case Activation::GeluTanh: return "gelu_tanh";
    case Activation::Silu: return "silu";
  }
  return "?";
}

std::string shape_of(int64_t m, int64_t n, int64_t k, const std::string& extra) {
  return "M=" + std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k) + " " + extra;
}

ConsistencyRow linear_row(int64_t m, int64_t n, int64_t k, Activation act, bool bias, torch::ScalarType dtype) {
  const bool bf16 = dtype == torch::kBFloat16;
  ConsistencyRow row;
  row.op = "decode_linear";
  row.shape = shape_of(m, n, k, std::string(name_of(act)) + (bias ? " bias" : ""));
  row.dtype = bf16 ? "bf16" : "fp32";
  row.device = "cpu";
  // The kernel sums in another order than BLAS; bf16 inputs are rounded alike in both,
  // so only the order (and the epilogue's approximations) differ.
  row.max_nmse = bf16 ? 1e-9 : 1e-11;
  row.run = [=] {
    torch::manual_seed(m * 7919 + n * 31 + k);
    auto x = torch::randn({m, k});                                              // (M, K)
    auto w = torch::randn({n, k}) / std::sqrt(static_cast<double>(k));          // (N, K)
    auto b = bias ? torch::randn({n}) : torch::Tensor();                        // (N)
    auto packed = troupe::kernels::pack_linear(w, b, dtype);
    return ConsistencyOutputs{{troupe::kernels::decode_linear(x, packed, act)},
                              {troupe::kernels::reference::decode_linear(x, w, b, act, dtype)}};
  };
  return row;
}

ConsistencyRow gated_row(int64_t m, int64_t n, int64_t k, torch::ScalarType dtype) {
  const bool bf16 = dtype == torch::kBFloat16;
  ConsistencyRow row;
  row.op = "decode_gated_linear";
  row.shape = shape_of(m, n, k, "silu(gate) * up");
  row.dtype = bf16 ? "bf16" : "fp32";
  row.device = "cpu";
  row.max_nmse = bf16 ? 1e-9 : 1e-11;
  row.run = [=] {
    torch::manual_seed(m * 13 + n + k);
    auto x = torch::randn({m, k});
    auto g = torch::randn({n, k}) / std::sqrt(static_cast<double>(k));
    auto u = torch::randn({n, k}) / std::sqrt(static_cast<double>(k));
    auto pg = troupe::kernels::pack_linear(g, {}, dtype), pu = troupe::kernels::pack_linear(u, {}, dtype);
    return ConsistencyOutputs{{troupe::kernels::decode_gated_linear(x, pg, pu)},
                              {troupe::kernels::reference::decode_gated_linear(x, g, u, dtype)}};
  };
  return row;
}

}  // namespace

TROUPE_CONSISTENCY_ROWS(rows) {
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    // M = 1 and 3, up to 32 (several row chunks), and an empty batch; N not a multiple
    // of 16, K not a multiple of 32 (and odd, which bf16 pads).
    for (int64_t m : {0, 1, 2, 3, 8, 9, 32})
      for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{64, 64}, {50, 33}, {768, 768}, {7, 1}})
        rows.push_back(linear_row(m, n, k, Activation::None, true, dtype));
    for (auto act : {Activation::Relu, Activation::Gelu, Activation::GeluTanh, Activation::Silu}) {
      rows.push_back(linear_row(1, 3072, 768, act, true, dtype));
      rows.push_back(linear_row(5, 100, 70, act, false, dtype));
    }
    rows.push_back(linear_row(1, 50272, 768, Activation::None, false, dtype));  // OPT-125m's LM head
    for (int64_t m : {0, 1, 3, 17}) rows.push_back(gated_row(m, 86, 45, dtype));
    rows.push_back(gated_row(4, 1024, 512, dtype));
  }
}
