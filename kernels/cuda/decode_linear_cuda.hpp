#pragma once
// Tensor glue of the CUDA decode linear (cuda/decode_linear.cuh): the launcher in
// src/decode_linear.cpp calls these for CUDA tensors. On CUDA a PackedLinear's data is
// the plain (N, K) weight in the packed dtype (pack_linear leaves it so).
#include <troupe/kernels/decode_linear.hpp>

namespace troupe::kernels::cuda {

/// act(x W^T + b): x (..., K) any float dtype on the weight's device -> (..., N) in x's
/// dtype. x is rounded to the weight's dtype first (bf16 weights: as a bf16 matmul);
/// sums and epilogue in fp32.
torch::Tensor decode_linear(const torch::Tensor& x, const PackedLinear& weight, Activation activation);

/// silu(x G^T) * (x U^T); gate and up (N, K) alike, no bias.
torch::Tensor decode_gated_linear(const torch::Tensor& x, const PackedLinear& gate, const PackedLinear& up);

}  // namespace troupe::kernels::cuda
