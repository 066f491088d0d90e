#pragma once
/// Attention of one new query per row over a KV cache (the decode step), reading the
/// padding from the attention mask itself: no (B, 1, T, S) additive mask is built.
///
/// Position s of row b may be attended when key_mask[b][s] != 0, and the newest
/// position (length - 1) always may (a row that is all padding attends only itself,
/// as the models' prefill mask allows). Grouped-query attention: query head h reads
/// key/value head h / (H / H_kv). Softmax and sums in fp32 whatever the cache dtype.
#include <torch/types.h>

namespace troupe::kernels {

/// q (B, H, D) in fp32 or bf16; k_cache, v_cache (B, H_kv, C, D) fp32 or bf16 (the
/// cache's storage, C >= length; positions [0, length) are read); key_mask (B, L') with
/// L' >= length, any integer or bool dtype (1 = real token), or undefined (all real);
/// scale multiplies q.k (1/sqrt(D) as SDPA). Returns (B, H, D) in q's dtype.
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                               int64_t length, const torch::Tensor& key_mask, double scale);

namespace reference {
/// The same in LibTorch ops (SDPA over the first `length` positions with an additive mask).
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                               int64_t length, const torch::Tensor& key_mask, double scale);
}  // namespace reference

}  // namespace troupe::kernels
