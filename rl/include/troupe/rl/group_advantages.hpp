#pragma once
/// Critic-free advantages from groups of answers to one prompt: GRPO's (Shao et al. 2024,
/// DeepSeekMath) normalised scores, RLOO's leave-one-out baseline, the group-mean baseline.
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

/// The group of each row (B,) int64, 0, 1, ...: consecutive rows with the same prompt ids
/// (B, P), at most `group_size` to a group. The trainer repeats each prompt
/// samples_per_prompt times in consecutive rows, then drops short answers, so a group
/// may have fewer rows, down to one; this finds them without assuming whole groups.
torch::Tensor prompt_groups(const torch::Tensor& prompts, int64_t group_size);

/// scores (B,) minus the mean score of their group (groups from prompt_groups), float32.
/// A lone row gets 0.
torch::Tensor group_centered(const torch::Tensor& scores, const torch::Tensor& groups);

/// group_normalized_advantages over groups of any size (groups from prompt_groups):
/// (score - group mean) / (group std + eps), Bessel std; a lone row gets 0.
torch::Tensor group_normalized_advantages(const torch::Tensor& scores, const torch::Tensor& groups, double eps,
                                          bool scale);

/// RLOO's advantages (B,) float32: score minus the mean of the other scores of its group,
/// = n / (n - 1) * (score - group mean) for a group of n; a lone row has no baseline and
/// gets 0.
torch::Tensor leave_one_out_advantages(const torch::Tensor& scores, const torch::Tensor& groups);

/// A per-sample advantage (B,) broadcast over the answer's tokens: (B, A) with
/// advantages[b] at every action token and 0 elsewhere. answer_mask (B, A) is the
/// action mask over answer positions, action_mask[:, start:].
torch::Tensor broadcast_over_actions(const torch::Tensor& advantages, const torch::Tensor& answer_mask);

}  // namespace troupe::rl
