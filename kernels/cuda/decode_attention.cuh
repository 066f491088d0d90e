#pragma once
// Raw CUDA launcher of decode attention (no LibTorch): one query per (row, head) over
// the first `length` positions of a KV cache, padding read from a per-row key mask.
//   q (B, H, D) contiguous          k, v (B, H_kv, C, D) with strides, last dim contiguous
//   key_mask (B, L') or null        out (B, H, D) contiguous, in q's dtype
// Position s of row b is attended when key_mask[b][s] != 0 or s == length - 1. Query
// head h reads KV head h / (H / H_kv). Scores, softmax and sums in fp32. D <= 256.
#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/float_dtype.hpp"

namespace troupe::kernels::cuda {

enum class MaskDType : int { None = 0, U8, I32, I64 };  ///< U8 also reads bool and int8

struct DecodeAttentionArgs {
  const void* q = nullptr;  // (B, H, D)
  FloatDType q_dtype = FloatDType::F32;  // also out's; F32 or BF16
  const void* k = nullptr;  // (B, H_kv, C, D)
  const void* v = nullptr;  // (B, H_kv, C, D)
  FloatDType kv_dtype = FloatDType::F32;  // F32 or BF16
  int64_t k_stride_b = 0, k_stride_h = 0, k_stride_s = 0;  // elements
  int64_t v_stride_b = 0, v_stride_h = 0, v_stride_s = 0;
  const void* key_mask = nullptr;  // (B, L'), row stride mask_stride_b, or null
  MaskDType mask_dtype = MaskDType::None;
  int64_t mask_stride_b = 0;
  void* out = nullptr;  // (B, H, D)
  int64_t batch = 0, heads = 0, kv_heads = 0, head_dim = 0, length = 0;
  float scale = 1.f;
};

/// Largest head_dim and length the kernel takes (splits of at most 1024 positions,
/// at most 8192 of them).
constexpr int64_t kDecodeAttentionMaxHeadDim = 256;
constexpr int64_t kDecodeAttentionMaxLength = 1024 * 8192;

/// Floats of device scratch decode_attention needs for `a` on the current device
/// (partial results when positions are split over blocks; 0 when they are not).
int64_t decode_attention_workspace_floats(const DecodeAttentionArgs& a);

/// Runs on `stream`; `workspace` holds decode_attention_workspace_floats(a) floats.
void decode_attention(const DecodeAttentionArgs& a, float* workspace, cudaStream_t stream);

}  // namespace troupe::kernels::cuda
