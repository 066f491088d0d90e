#pragma once
/// GRPO's critic-free advantages (Shao et al. 2024, DeepSeekMath): each answer's score
/// relative to the other answers to the same prompt.
#include <torch/types.h>

namespace troupe::rl {

/// scores (B,) with B = groups * group_size, the group_size samples of a prompt in
/// consecutive rows (prompts repeated with repeat_interleave). Returns (B,):
///   (score - mean of its group) / (std of its group + eps)
/// std with Bessel's correction (torch.std's default, as TRL's GRPOTrainer); a group
/// whose answers all scored the same gets advantage 0. With `scale` false the division
/// is skipped (Dr. GRPO). group_size >= 2.
torch::Tensor group_normalized_advantages(const torch::Tensor& scores, int64_t group_size, double eps = 1e-4,
                                          bool scale = true);

/// A per-sample advantage (B,) broadcast over the answer's tokens: (B, A) with
/// advantages[b] at every action token and 0 elsewhere. answer_mask (B, A) is the
/// action mask over answer positions, action_mask[:, start:].
torch::Tensor broadcast_over_actions(const torch::Tensor& advantages, const torch::Tensor& answer_mask);

}  // namespace troupe::rl
