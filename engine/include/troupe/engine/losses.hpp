#pragma once
/// The losses of steps 1 and 2 (REFERENCE.md): the causal language-model loss of
/// supervised fine-tuning and the pairwise ranking loss of the reward model.
#include <torch/types.h>

namespace troupe::engine {

/// Hugging Face's causal-LM loss: mean cross-entropy of logits[:, :-1] against
/// labels[:, 1:], skipping labels equal to -100; computed in fp32. logits (B, T, V),
/// labels (B, T).
torch::Tensor language_model_loss(const torch::Tensor& logits, const torch::Tensor& labels);

struct RewardModelLoss {
  torch::Tensor loss;             ///< scalar, differentiable
  torch::Tensor chosen_scores;    ///< (B) value at each chosen sequence's last real token
  torch::Tensor rejected_scores;  ///< (B)
};

/// DeepSpeed-Chat's pairwise loss over per-token values (2B, T) of B chosen rows then
/// B rejected rows, right padded (attention_mask 0 on padding). Per pair: end = first
/// padding position of each row (T when none); the span runs from the first position
/// where the two rows' ids differ up to max(chosen end, rejected end); loss = mean over
/// the span of -logsigmoid(v_chosen - v_rejected), averaged over pairs. Identical rows
/// compare their last position, as DeepSpeed-Chat does.
RewardModelLoss reward_model_loss(const torch::Tensor& values, const torch::Tensor& input_ids,
                                  const torch::Tensor& attention_mask);

}  // namespace troupe::engine
