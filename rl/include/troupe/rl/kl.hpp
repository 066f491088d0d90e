#pragma once
/// Per-token estimators of KL(policy || reference) from log-probs of sampled tokens
/// (Schulman, "Approximating KL divergence"; the k1/k2/k3 of OpenRLHF and veRL).
#include <string>

#include <torch/types.h>

namespace troupe::rl {

enum class KlEstimator {
  K1,  ///< log r, with log r = logprobs - ref_logprobs: unbiased, high variance, can be < 0
  K2,  ///< (log r)^2 / 2: biased, low variance, >= 0
  K3,  ///< exp(-log r) - 1 + log r: unbiased, low variance, >= 0 (GRPO's KL term)
};

/// Parses "k1", "k2" or "k3"; throws troupe::Error naming the known ones.
KlEstimator parse_kl_estimator(const std::string& name);

/// The estimate per token; logprobs and ref_logprobs have the same shape, e.g. (B, T-1).
torch::Tensor kl_estimate(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs,
                          KlEstimator estimator);

}  // namespace troupe::rl
