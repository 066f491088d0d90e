#pragma once
/// Log-probabilities of the tokens a sequence holds, from a causal LM's logits.
#include <torch/types.h>

namespace troupe::rl {

/// log_softmax(logits)[b, t, labels[b, t]]: logits (B, L, V), labels (B, L) -> (B, L).
/// Materialises the full log_softmax; the plain reference of the lean version below.
/// Half and bfloat16 logits are computed and returned in float32.
torch::Tensor token_log_probs(const torch::Tensor& logits, const torch::Tensor& labels);

/// The same values without a (B, L, V) log_softmax: per row logit[label] - logsumexp,
/// over chunks of at most `rows_per_chunk` rows, so the extra memory is one chunk of
/// (rows_per_chunk, V) in float32. Differentiable (the policy loss backpropagates it).
torch::Tensor token_log_probs_chunked(const torch::Tensor& logits, const torch::Tensor& labels,
                                      int64_t rows_per_chunk = 1024);

/// DeepSpeed-Chat's gather_log_probs(logits[:, :-1], seq[:, 1:]): logits (B, T, V),
/// sequences (B, T) -> (B, T-1), position t scoring sequences[:, t + 1].
torch::Tensor gather_log_probs(const torch::Tensor& logits, const torch::Tensor& sequences);

/// gather_log_probs through token_log_probs_chunked.
torch::Tensor gather_log_probs_chunked(const torch::Tensor& logits, const torch::Tensor& sequences,
                                       int64_t rows_per_chunk = 1024);

}  // namespace troupe::rl
