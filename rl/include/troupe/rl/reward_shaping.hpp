#pragma once
/// PPO's per-token rewards (REFERENCE.md "Step 3: PPO"): a KL penalty on every action
/// plus the clipped reward-model score on the last one.
#include <torch/types.h>

namespace troupe::rl {

/// One past each row's last action in Token positions: start + action_mask[:, start:].sum(1),
/// (B,) int64. action_mask (B, L) = attention_mask[:, 1:]; the EOS that ends an answer is
/// in the mask, so no +1 (DeepSpeed-Chat adds 1 only because its pad == eos hides the EOS).
/// Answers are contiguous after the prompt, so the count of actions gives the end.
torch::Tensor answer_ends(const torch::Tensor& action_mask, int64_t start);

/// 1 at Token positions start <= t < end of each row, else 0: (B, L) in `dtype`.
torch::Tensor answer_span_mask(const torch::Tensor& action_mask, int64_t start,
                               torch::ScalarType dtype = torch::kFloat);

/// DeepSpeed-Chat's compute_rewards with troupe's EOS rule, (B, L):
///   rewards[:, t] = -kl_ctl * (logprobs - ref_logprobs)[:, t]   for start <= t < end
///   rewards[b, end_b - 1] += clamp(reward_score[b], -clip_reward_value, clip_reward_value)
/// and 0 elsewhere (prompt positions and past the end). A row without actions gets 0.
/// logprobs, ref_logprobs, action_mask (B, L); reward_score (B,).
torch::Tensor compute_rewards(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs,
                              const torch::Tensor& reward_score, const torch::Tensor& action_mask,
                              int64_t start, double kl_ctl, double clip_reward_value);

/// x (B, L) with positions at and after each row's end set to 0 (what DeepSpeed-Chat does
/// to the old values before GAE, so the bootstrap past the last action is 0).
torch::Tensor zero_past_end(const torch::Tensor& x, const torch::Tensor& action_mask, int64_t start);

}  // namespace troupe::rl
