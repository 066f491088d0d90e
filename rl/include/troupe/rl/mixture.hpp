#pragma once
/// Mixture (ptx) training: after the PPO step, a step on unsup_coef times the language
/// modelling loss of an unsupervised block (DeepSpeed-Chat's train_unsupervised).
#include <torch/types.h>

namespace troupe::rl {

/// Hugging Face's causal LM loss: the mean over predicted tokens of -log p(labels[:, t+1])
/// under logits[:, t], skipping labels equal to `ignore_index`; logits (B, T, V), labels
/// (B, T) (= input_ids for unsupervised blocks). Uses the chunked log-probs, so no
/// (B, T, V) log_softmax is materialised. Differentiable.
torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels, int64_t ignore_index = -100);

/// unsup_coef * causal_lm_loss(logits, labels): the loss of the mixture step (REFERENCE.md
/// default unsup_coef 27.8).
torch::Tensor mixture_loss(const torch::Tensor& logits, const torch::Tensor& labels, double unsup_coef);

}  // namespace troupe::rl
