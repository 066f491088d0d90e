#pragma once
// Tensor glue of the CUDA decode attention (cuda/decode_attention.cuh): the launcher
// in src/decode_attention.cpp calls it for CUDA tensors, with the arguments of
// kernels::decode_attention (see <troupe/kernels/decode_attention.hpp>).
#include <troupe/kernels/decode_attention.hpp>

namespace troupe::kernels::cuda {

/// q (B, H, D) fp32/bf16; k_cache, v_cache (B, H_kv, C, D) fp32/bf16 (one dtype), any
/// strides; key_mask (B, L' >= length) integer/bool or undefined. D <= 256.
/// Returns (B, H, D) in q's dtype.
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                               int64_t length, const torch::Tensor& key_mask, double scale);

}  // namespace troupe::kernels::cuda
