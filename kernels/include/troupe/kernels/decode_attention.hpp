#pragma once
/// Attention of one new query per row over a KV cache (the decode step), reading the
/// padding from the attention mask itself: no (B, 1, T, S) additive mask is built.
///
/// Position s of row b may be attended when key_mask[b][s] != 0, and the newest
/// position (length - 1) always may (a row that is all padding attends only itself,
/// as the models' prefill mask allows). With `row_lengths`, row b has its own length:
/// it reads positions [0, row_lengths[b]) and its newest is row_lengths[b] - 1, so rows
/// of different lengths share one call (continuous batching). A row's arithmetic never
/// depends on the other rows. Grouped-query attention: query head h reads
/// key/value head h / (H / H_kv). Softmax and sums in fp32 whatever the cache dtype.
#include <torch/types.h>

namespace troupe::kernels {

/// q (B, H, D) in fp32 or bf16; k_cache, v_cache (B, H_kv, C, D) fp32 or bf16 (the
/// cache's storage, C >= length; positions [0, length) are read); key_mask (B, L') with
/// L' >= length, any integer or bool dtype (1 = real token), or undefined (all real);
/// scale multiplies q.k (1/sqrt(D) as SDPA); row_lengths (B) int64 on the CPU with
/// values in [1, length], or undefined (every row has `length`). Returns (B, H, D) in
/// q's dtype. Per-row lengths run on the CPU only.
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                               int64_t length, const torch::Tensor& key_mask, double scale,
                               const torch::Tensor& row_lengths = {});

namespace reference {
/// The same in LibTorch ops (SDPA over the first `length` positions with an additive mask).
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                               int64_t length, const torch::Tensor& key_mask, double scale,
                               const torch::Tensor& row_lengths = {});
}  // namespace reference

}  // namespace troupe::kernels
