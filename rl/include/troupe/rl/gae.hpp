#pragma once
/// Generalised advantage estimation (Schulman et al. 2016) as DeepSpeed-Chat runs it.
#include <torch/types.h>

namespace troupe::rl {

struct AdvantagesAndReturns {
  torch::Tensor advantages;  // (B, L - start), detached
  torch::Tensor returns;     // (B, L - start) = advantages + values[:, start:]
};

/// Backwards from t = L - 1 down to start:
///   delta_t = rewards[:, t] + gamma * values[:, t + 1] - values[:, t]   (values[:, L] = 0)
///   A_t     = delta_t + gamma * lam * A_{t+1}
/// values and rewards (B, L) should already be 0 past each row's end (zero_past_end,
/// compute_rewards), which stops the bootstrap at the last action. No autograd.
AdvantagesAndReturns gae_advantages_and_returns(const torch::Tensor& values, const torch::Tensor& rewards,
                                                int64_t start, double gamma, double lam);

}  // namespace troupe::rl
