#pragma once
/// Weight-streaming linear for decode-sized inputs: y = act(x W^T + b) for a few rows
/// of x (M = 1..32, any M works) against a weight packed once for the kernel.
///
/// Decoding reads every weight once per token while doing 2M flops per weight, so it
/// is bound by memory bandwidth; BLAS's skinny-matrix paths on this kind of CPU reach
/// a third of it. The packed layout streams the weight in 64-byte lines, 16 output
/// features at a time, each line feeding M fused multiply-adds:
///   fp32: (P, K, 16)        P = ceil(N / 16) panels, element [p][k][j] = W[16p + j][k]
///   bf16: (P, K2, 16, 2)    K2 = ceil(K / 2), [p][k2][j][i] = W[16p + j][2 k2 + i]
/// (vdpbf16ps reads two bf16 of a feature per fp32 lane). Padding is zero. Sums are
/// fp32 in both; bf16 inputs x are rounded to bf16 first, as a bf16 matmul does.
/// On CUDA the packed weight is the plain (N, K) matrix in the packed dtype.
#include <cstdint>
#include <string>

#include <torch/types.h>

namespace troupe::kernels {

/// What the epilogue applies after the bias.
enum class Activation {
  None,
  Relu,
  Gelu,      ///< erf form
  GeluTanh,  ///< tanh approximation (GPT-2's gelu_new)
  Silu,
};

/// The Hugging Face config name ("relu", "gelu_new", "silu", ...) as an Activation;
/// throws troupe::Error for names it does not know.
Activation activation_from_name(const std::string& name);

/// A weight (N, K) and its bias in the kernel's layout. Made once per switch into
/// inference (pack_linear), read by every decode_linear call after.
struct PackedLinear {
  torch::Tensor data;  // fp32 (P, K, 16) or bf16 (P, K2, 16, 2); CUDA: (N, K)
  torch::Tensor bias;  // (N) fp32, or undefined
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  torch::ScalarType dtype = torch::kFloat32;  ///< kFloat32 or kBFloat16
  bool defined() const { return data.defined(); }
  int64_t bytes() const;
};

/// Packs `weight` (N, K) (any dtype, any strides, CPU or CUDA) and `bias` (N) or
/// undefined, converting to `dtype` (kFloat32 or kBFloat16). The result is a copy:
/// changing `weight` afterwards does not change it.
PackedLinear pack_linear(const torch::Tensor& weight, const torch::Tensor& bias, torch::ScalarType dtype);

/// act(x W^T + b): x (..., K) of any float dtype -> (..., N) in x's dtype. Runs on
/// the intra-op thread pool, parallel over output panels.
torch::Tensor decode_linear(const torch::Tensor& x, const PackedLinear& weight, Activation activation = Activation::None);

/// Llama's gated MLP input, silu(x G^T) * (x U^T): x (..., K) -> (..., N), with `gate`
/// and `up` packed alike (N, K), neither with a bias. One pass over x per panel pair.
torch::Tensor decode_gated_linear(const torch::Tensor& x, const PackedLinear& gate, const PackedLinear& up);

namespace reference {
/// act(x W^T + b) in LibTorch ops: weight (N, K) in the packed dtype, sums in fp32.
torch::Tensor decode_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            Activation activation, torch::ScalarType dtype);
torch::Tensor decode_gated_linear(const torch::Tensor& x, const torch::Tensor& gate, const torch::Tensor& up,
                                  torch::ScalarType dtype);
/// The activation alone, in LibTorch ops.
torch::Tensor apply_activation(const torch::Tensor& x, Activation activation);
}  // namespace reference

}  // namespace troupe::kernels
