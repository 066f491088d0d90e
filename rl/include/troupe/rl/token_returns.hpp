#pragma once
/// REINFORCE-style per-token rewards and returns over the answer positions, without a
/// critic (REINFORCE++, Hu 2025; OpenRLHF's compute_reward and get_cumulative_returns).
#include <torch/types.h>

namespace troupe::rl {

/// Per-token rewards (B, A): -kl_coef * kl on every action, plus score[b] on row b's
/// last action; 0 off the mask. score (B,); kl and answer_mask (B, A), answer_mask =
/// action_mask over the answer positions. A row without actions gets 0. No autograd.
torch::Tensor kl_shaped_rewards(const torch::Tensor& score, const torch::Tensor& kl, const torch::Tensor& answer_mask,
                                double kl_coef);

/// Returns (B, A): G_t = r_t + gamma * G_{t+1}, backwards over the answer positions, with
/// rewards off the mask taken as 0. No autograd.
torch::Tensor discounted_returns(const torch::Tensor& rewards, const torch::Tensor& answer_mask, double gamma);

/// OpenRLHF's global advantage normalisation: (x - mean) * rsqrt(max(var, 1e-8)) with the
/// mean and the population variance of the masked elements of the whole batch; 0 off
/// the mask (and everywhere when the mask is empty). x and mask (B, A).
torch::Tensor normalize_over_tokens(const torch::Tensor& x, const torch::Tensor& mask);

}  // namespace troupe::rl
