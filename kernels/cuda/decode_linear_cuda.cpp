#include "cuda/decode_linear_cuda.hpp"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/accumulate.h>

#include "cuda/decode_linear.cuh"
#include "cuda/launch_check.hpp"

namespace troupe::kernels::cuda {
namespace {

// Blocks cover at most 32 rows of x each, in gridDim.y (at most 65535).
constexpr int64_t kMaxRows = 65535LL * 32;

void check_packed(const PackedLinear& w, const char* op, const char* name) {
  TORCH_CHECK(w.defined(), op, ": ", name, " is not packed");
  TORCH_CHECK(w.dtype == torch::kFloat32 || w.dtype == torch::kBFloat16, op, ": ", name,
              " must be packed as fp32 or bf16, not ", w.dtype);
  TORCH_CHECK(w.data.scalar_type() == w.dtype, op, ": ", name, " data is ", w.data.scalar_type(),
              " but packed as ", w.dtype);
  TORCH_CHECK(w.data.dim() == 2 && w.data.size(0) == w.out_features && w.data.size(1) == w.in_features, op, ": ",
              name, " on CUDA is the plain (N, K) = (", w.out_features, ", ", w.in_features, ") matrix, got ",
              w.data.sizes());
  TORCH_CHECK(w.data.is_contiguous(), op, ": ", name, " must be contiguous");
  if (w.bias.defined()) {
    TORCH_CHECK(w.bias.scalar_type() == torch::kFloat32 && w.bias.dim() == 1 && w.bias.size(0) == w.out_features &&
                    w.bias.is_contiguous(),
                op, ": ", name, " bias must be contiguous fp32 (", w.out_features, "), got ", w.bias.scalar_type(), " ",
                w.bias.sizes());
  }
}

void check_input(const torch::Tensor& x, int64_t k, const char* op) {
  TORCH_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == k, op, ": x must be (..., ", k, "), got ",
              x.defined() ? x.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op, ": x must be a float tensor, got ", x.scalar_type());
}

void check_device(const torch::Tensor& x, const PackedLinear& w, const char* op) {
  TORCH_CHECK(x.is_cuda() && w.data.is_cuda() && x.device() == w.data.device(), op,
              ": x and the weight must be on one CUDA device, got ", x.device(), " and ", w.data.device());
  TORCH_CHECK(!w.bias.defined() || w.bias.device() == w.data.device(), op, ": the bias is on ", w.bias.device());
}

/// x as (M, K) contiguous rows in the weight's dtype.
torch::Tensor rows(const torch::Tensor& x, int64_t k, torch::ScalarType dtype, const char* op) {
  const auto lead = x.sizes().slice(0, x.dim() - 1);
  const int64_t m = c10::multiply_integers(lead.begin(), lead.end());  // not numel / K: K may be 0
  auto x2 = x.reshape({m, k}).to(dtype).contiguous();
  TORCH_CHECK(x2.size(0) <= kMaxRows, op, ": at most ", kMaxRows, " rows, got ", x2.size(0));
  return x2;
}

std::vector<int64_t> out_sizes(const torch::Tensor& x, int64_t n) {
  auto sizes = x.sizes().vec();
  sizes.back() = n;
  return sizes;
}

Act act_of(Activation a) {
  switch (a) {
    case Activation::None: return Act::None;
    case Activation::Relu: return Act::Relu;
    case Activation::Gelu: return Act::Gelu;
    case Activation::GeluTanh: return Act::GeluTanh;
    case Activation::Silu: return Act::Silu;
  }
  TORCH_CHECK(false, "decode_linear: unknown activation ", static_cast<int>(a));
}

const __nv_bfloat16* bf16_ptr(const torch::Tensor& t) {
  return reinterpret_cast<const __nv_bfloat16*>(t.data_ptr<at::BFloat16>());
}

}  // namespace

torch::Tensor decode_linear(const torch::Tensor& x, const PackedLinear& weight, Activation activation) {
  constexpr const char* op = "decode_linear";
  check_packed(weight, op, "the weight");
  check_input(x, weight.in_features, op);
  const Act act = act_of(activation);
  check_device(x, weight, op);
  const c10::cuda::CUDAGuard guard(x.device());

  const int64_t n = weight.out_features, k = weight.in_features;
  const auto x2 = rows(x, k, weight.dtype, op);  // (M, K)
  const int64_t m = x2.size(0);
  auto y = torch::empty({m, n}, x2.options().dtype(torch::kFloat32));  // (M, N)
  if (m > 0 && n > 0) {
    const float* bias = weight.bias.defined() ? weight.bias.data_ptr<float>() : nullptr;
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    if (weight.dtype == torch::kBFloat16)
      decode_linear_bf16(bf16_ptr(x2), bf16_ptr(weight.data), bias, y.data_ptr<float>(), m, n, k, n, act, stream);
    else
      decode_linear_f32(x2.data_ptr<float>(), weight.data.data_ptr<float>(), bias, y.data_ptr<float>(), m, n, k, n,
                        act, stream);
    check_launch(op);
  }
  return y.to(x.scalar_type()).view(out_sizes(x, n));
}

torch::Tensor decode_gated_linear(const torch::Tensor& x, const PackedLinear& gate, const PackedLinear& up) {
  constexpr const char* op = "decode_gated_linear";
  check_packed(gate, op, "gate");
  check_packed(up, op, "up");
  TORCH_CHECK(gate.dtype == up.dtype && gate.in_features == up.in_features && gate.out_features == up.out_features, op,
              ": gate and up must be packed alike, got ", gate.dtype, " (", gate.out_features, ", ", gate.in_features,
              ") and ", up.dtype, " (", up.out_features, ", ", up.in_features, ")");
  TORCH_CHECK(!gate.bias.defined() && !up.bias.defined(), op, ": gate and up take no bias");
  check_input(x, gate.in_features, op);
  check_device(x, gate, op);
  check_device(x, up, op);
  const c10::cuda::CUDAGuard guard(x.device());

  const int64_t n = gate.out_features, k = gate.in_features;
  const auto x2 = rows(x, k, gate.dtype, op);  // (M, K)
  const int64_t m = x2.size(0);
  auto y = torch::empty({m, n}, x2.options().dtype(torch::kFloat32));  // (M, N)
  if (m > 0 && n > 0) {
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    if (gate.dtype == torch::kBFloat16)
      decode_gated_bf16(bf16_ptr(x2), bf16_ptr(gate.data), bf16_ptr(up.data), y.data_ptr<float>(), m, n, k, n, stream);
    else
      decode_gated_f32(x2.data_ptr<float>(), gate.data.data_ptr<float>(), up.data.data_ptr<float>(),
                       y.data_ptr<float>(), m, n, k, n, stream);
    check_launch(op);
  }
  return y.to(x.scalar_type()).view(out_sizes(x, n));
}

}  // namespace troupe::kernels::cuda
