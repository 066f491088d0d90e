#pragma once
/// PPO's clipped policy (actor) and value (critic) losses, DeepSpeed-Chat's
/// actor_loss_fn and critic_loss_fn.
#include <torch/types.h>

namespace troupe::rl {

/// Per token max(-A * ratio, -A * clamp(ratio, 1 - cliprange, 1 + cliprange)) with
/// ratio = exp((logprobs - old_logprobs) * mask); all (B, L), mask 1 on action tokens.
/// Positions outside the mask hold values the losses never count.
torch::Tensor clipped_surrogate(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                                const torch::Tensor& advantages, const torch::Tensor& mask, double cliprange);

/// masked_mean of clipped_surrogate: the PPO actor loss, differentiable in `logprobs`.
torch::Tensor ppo_actor_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                             const torch::Tensor& advantages, const torch::Tensor& mask, double cliprange);

/// Per token max((v - R)^2, (clamp(v, v_old - c, v_old + c) - R)^2), c = cliprange_value;
/// values, old_values, returns (B, L). Differentiable in `values`.
torch::Tensor clipped_value_error(const torch::Tensor& values, const torch::Tensor& old_values,
                                  const torch::Tensor& returns, double cliprange_value);

/// 0.5 * masked_mean(max((v - R)^2, (clamp(v, v_old - c, v_old + c) - R)^2)), c =
/// cliprange_value; values, old_values, returns, mask (B, L). Differentiable in `values`.
torch::Tensor ppo_value_loss(const torch::Tensor& values, const torch::Tensor& old_values,
                             const torch::Tensor& returns, const torch::Tensor& mask, double cliprange_value);

/// Fraction of action tokens whose ratio left [1 - cliprange, 1 + cliprange] (a metric).
torch::Tensor clip_fraction(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                            const torch::Tensor& mask, double cliprange);

}  // namespace troupe::rl
