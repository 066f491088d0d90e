#pragma once
/// GRPO (Shao et al. 2024): several answers per prompt, advantages normalised within
/// each prompt's group, no critic, the KL to the reference as a loss term (k3).
#include <troupe/rl/algorithm.hpp>

namespace troupe::rl {

/// GRPO's settings; each overridable by its name in AlgorithmOptions.
struct GrpoConfig {
  int64_t samples_per_prompt = 4;  ///< the group size G (>= 2)
  double cliprange = 0.2;          ///< ratio clip of the surrogate
  double kl_coef = 0.04;           ///< beta, weight of the k3 KL term (0 = no reference model)
  double eps = 1e-4;               ///< added to the group std
  bool scale_rewards = true;       ///< divide by the group std (false: Dr. GRPO)
  /// Loss aggregation: false = mean over each answer's tokens, then over answers (the
  /// paper's 1/G sum 1/|o|); true = one mean over all action tokens (Dr. GRPO, DAPO).
  bool token_mean = false;

  static GrpoConfig from_options(const AlgorithmOptions& options);
};

class Grpo : public Algorithm {
 public:
  explicit Grpo(GrpoConfig config = {}) : config_(config) {}

  std::string name() const override { return "grpo"; }
  AlgorithmRoles roles() const override { return {false, config_.kl_coef > 0, RewardSource::Any}; }
  int64_t samples_per_prompt() const override { return config_.samples_per_prompt; }

  /// exp.advantages (B, A) = group_normalized_advantages(reward_score) on every action
  /// token; exp.returns and exp.rewards stay unset.
  void compute_advantages(Experience& exp) override;
  /// Per action token clipped_surrogate(...) + kl_coef * k3(logprobs, ref_logprobs),
  /// aggregated as GrpoConfig::token_mean says.
  torch::Tensor policy_loss(const torch::Tensor& logprobs, const Experience& exp) const override;

  const GrpoConfig& config() const { return config_; }

 private:
  GrpoConfig config_;
};

}  // namespace troupe::rl
