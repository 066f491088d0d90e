// The decode-linear launcher: packing, checks, dispatch by device and CPU features.
#include <troupe/kernels/decode_linear.hpp>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/kernels/cpu_features.hpp>

#include "cpu/decode_linear.hpp"
#include "src/kernel_isa.hpp"

#if defined(TROUPE_WITH_CUDA) && __has_include("cuda/decode_linear_cuda.hpp")
#include "cuda/decode_linear_cuda.hpp"
#define TROUPE_DECODE_LINEAR_CUDA 1
#endif

namespace troupe::kernels {
namespace {

using cpu::kPanel;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void check_dtype(torch::ScalarType dtype) {
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16)
    throw Error(std::string("decode_linear: packed weights are fp32 or bf16, not ") + c10::toString(dtype));
}

/// x (..., K) as (M, K) rows: fp32, or bf16 pairs (M, K2) with a zero pad for odd K.
torch::Tensor rows_for(const torch::Tensor& x, const PackedLinear& w) {
  auto rows = x.reshape({-1, w.in_features});  // (M, K)
  if (w.dtype == torch::kFloat32) return rows.to(torch::kFloat32).contiguous();
  const int64_t k2 = ceil_div(w.in_features, 2);
  if (k2 * 2 == w.in_features) return rows.to(torch::kBFloat16).contiguous();
  auto padded = torch::zeros({rows.size(0), k2 * 2}, rows.options().dtype(torch::kBFloat16));  // (M, 2 K2)
  padded.narrow(1, 0, w.in_features).copy_(rows);
  return padded;
}

std::vector<int64_t> output_shape(const torch::Tensor& x, int64_t n) {
  auto shape = x.sizes().vec();
  shape.back() = n;
  return shape;
}

void check_input(const torch::Tensor& x, const PackedLinear& w, const char* what) {
  if (!w.defined()) throw Error(std::string(what) + ": the weight is not packed");
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == w.in_features, what, ": x must be (..., ", w.in_features, "), got ",
              x.sizes());
  TORCH_CHECK(x.device() == w.data.device(), what, ": x is on ", x.device(), ", the weight on ", w.data.device());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), what, ": x must be floating point, got ", x.scalar_type());
}

/// Runs `kernel(p_begin, p_end)` over the panels on the intra-op pool. A task gets at
/// least 4 panels (64 output features) so small layers do not pay for many wake-ups.
template <typename Kernel>
void for_panels(int64_t panels, const Kernel& kernel) {
  at::parallel_for(0, panels, 4, [&](int64_t begin, int64_t end) { kernel(begin, end); });
}

cpu::DecodeLinearArgs args_for(const torch::Tensor& rows, const PackedLinear& w, const torch::Tensor& bias,
                               Activation act, torch::Tensor& y) {
  cpu::DecodeLinearArgs a;
  a.m = rows.size(0);
  a.k = w.in_features;
  a.n = w.out_features;
  a.ldx = w.dtype == torch::kFloat32 ? rows.stride(0) : rows.stride(0) / 2;  // bf16: pairs
  a.ldy = y.stride(0);
  a.bias = bias.defined() ? bias.data_ptr<float>() : nullptr;
  a.act = static_cast<cpu::Act>(act);
  a.y = y.data_ptr<float>();
  return a;
}

const uint32_t* pairs(const torch::Tensor& t) { return reinterpret_cast<const uint32_t*>(t.data_ptr()); }

/// Which build runs: the AVX-512 kernel where the CPU has AVX-512 (and AVX512_BF16 for
/// bf16 weights), else the portable source built for AVX2 + FMA, else its baseline.
enum class Path { Avx512, Avx2, Baseline };
Path path_for(torch::ScalarType dtype) {
  const auto& f = cpu_features();
  if (dtype == torch::kFloat32 ? f.avx512 : f.avx512_bf16) return Path::Avx512;
#ifdef TROUPE_KERNELS_X86_CLONES
  if (kernel_isa() != cpu::Isa::Baseline) return Path::Avx2;
#endif
  return Path::Baseline;
}

/// Calls the build of `kernel` that `path` names.
#ifdef TROUPE_KERNELS_X86_CLONES
#define TROUPE_PICK(path, kernel, ...)                                          \
  ((path) == Path::Avx512 ? cpu::kernel##_avx512(__VA_ARGS__)                   \
   : (path) == Path::Avx2 ? cpu::kernel##_avx2(__VA_ARGS__) : cpu::kernel(__VA_ARGS__))
#else
#define TROUPE_PICK(path, kernel, ...) \
  ((path) == Path::Avx512 ? cpu::kernel##_avx512(__VA_ARGS__) : cpu::kernel(__VA_ARGS__))
#endif

}  // namespace

Activation activation_from_name(const std::string& name) {
  if (name == "relu") return Activation::Relu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::GeluTanh;
  if (name == "gelu") return Activation::Gelu;
  if (name == "silu" || name == "swish") return Activation::Silu;
  throw Error("unsupported activation function \"" + name + "\"; supported: relu, gelu, gelu_new, silu");
}

int64_t PackedLinear::bytes() const {
  int64_t total = data.defined() ? data.numel() * data.element_size() : 0;
  if (bias.defined()) total += bias.numel() * bias.element_size();
  return total;
}

PackedLinear pack_linear(const torch::Tensor& weight, const torch::Tensor& bias, torch::ScalarType dtype) {
  check_dtype(dtype);
  TORCH_CHECK(weight.dim() == 2, "pack_linear: weight must be (N, K), got ", weight.sizes());
  torch::NoGradGuard no_grad;
  PackedLinear packed;
  packed.out_features = weight.size(0);
  packed.in_features = weight.size(1);
  packed.dtype = dtype;
  const int64_t n = packed.out_features, k = packed.in_features;
  if (bias.defined()) {
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == n, "pack_linear: bias must be (", n, "), got ", bias.sizes());
    packed.bias = bias.detach().to(torch::kFloat32).contiguous().clone();
  }
  auto w = weight.detach();
  if (!w.device().is_cpu()) {
    packed.data = w.to(dtype).contiguous().clone();  // (N, K): the CUDA kernels read it row by row
    return packed;
  }
  const int64_t panels = ceil_div(n, kPanel);
  if (dtype == torch::kFloat32) {
    auto padded = torch::zeros({panels * kPanel, k}, w.options().dtype(torch::kFloat32));  // (16 P, K)
    padded.narrow(0, 0, n).copy_(w);
    packed.data = padded.view({panels, kPanel, k}).transpose(1, 2).contiguous();  // (P, K, 16)
  } else {
    const int64_t k2 = ceil_div(k, 2);
    auto padded = torch::zeros({panels * kPanel, k2 * 2}, w.options().dtype(torch::kBFloat16));  // (16 P, 2 K2)
    padded.narrow(0, 0, n).narrow(1, 0, k).copy_(w);
    packed.data = padded.view({panels, kPanel, k2, 2}).permute({0, 2, 1, 3}).contiguous();  // (P, K2, 16, 2)
  }
  return packed;
}

torch::Tensor decode_linear(const torch::Tensor& x, const PackedLinear& w, Activation activation) {
  check_input(x, w, "decode_linear");
#ifdef TROUPE_DECODE_LINEAR_CUDA
  if (x.is_cuda()) return cuda::decode_linear(x, w, activation);
#endif
  if (!x.device().is_cpu()) return reference::decode_linear(x, w.data, w.bias, activation, w.dtype);
  auto rows = rows_for(x, w);  // (M, K) fp32 or (M, K2) bf16 pairs
  auto y = torch::empty({rows.size(0), w.out_features}, x.options().dtype(torch::kFloat32));  // (M, N)
  if (rows.size(0) > 0 && w.out_features > 0) {
    const auto a = args_for(rows, w, w.bias, activation, y);
    const auto path = path_for(w.dtype);
    if (w.dtype == torch::kFloat32) {
      const float* xr = rows.data_ptr<float>();
      const float* wp = w.data.data_ptr<float>();
      for_panels(ceil_div(a.n, kPanel),
                 [&](int64_t p0, int64_t p1) { TROUPE_PICK(path, decode_linear_f32, xr, wp, a, p0, p1); });
    } else {
      const uint32_t* xr = pairs(rows);
      const uint32_t* wp = pairs(w.data);
      for_panels(ceil_div(a.n, kPanel),
                 [&](int64_t p0, int64_t p1) { TROUPE_PICK(path, decode_linear_bf16, xr, wp, a, p0, p1); });
    }
  }
  return y.view(output_shape(x, w.out_features)).to(x.scalar_type());
}

torch::Tensor decode_gated_linear(const torch::Tensor& x, const PackedLinear& gate, const PackedLinear& up) {
  check_input(x, gate, "decode_gated_linear");
  check_input(x, up, "decode_gated_linear");
  TORCH_CHECK(gate.out_features == up.out_features && gate.dtype == up.dtype && !gate.bias.defined() &&
                  !up.bias.defined(),
              "decode_gated_linear: gate and up must be packed alike, without bias");
#ifdef TROUPE_DECODE_LINEAR_CUDA
  if (x.is_cuda()) return cuda::decode_gated_linear(x, gate, up);
#endif
  if (!x.device().is_cpu()) return reference::decode_gated_linear(x, gate.data, up.data, gate.dtype);
  auto rows = rows_for(x, gate);
  auto y = torch::empty({rows.size(0), gate.out_features}, x.options().dtype(torch::kFloat32));  // (M, N)
  if (rows.size(0) > 0 && gate.out_features > 0) {
    const auto a = args_for(rows, gate, {}, Activation::None, y);
    const auto path = path_for(gate.dtype);
    if (gate.dtype == torch::kFloat32) {
      const float* xr = rows.data_ptr<float>();
      const float *g = gate.data.data_ptr<float>(), *u = up.data.data_ptr<float>();
      for_panels(ceil_div(a.n, kPanel),
                 [&](int64_t p0, int64_t p1) { TROUPE_PICK(path, decode_gated_f32, xr, g, u, a, p0, p1); });
    } else {
      const uint32_t* xr = pairs(rows);
      const uint32_t *g = pairs(gate.data), *u = pairs(up.data);
      for_panels(ceil_div(a.n, kPanel),
                 [&](int64_t p0, int64_t p1) { TROUPE_PICK(path, decode_gated_bf16, xr, g, u, a, p0, p1); });
    }
  }
  return y.view(output_shape(x, gate.out_features)).to(x.scalar_type());
}

}  // namespace troupe::kernels
