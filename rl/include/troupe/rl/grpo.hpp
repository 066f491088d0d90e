#pragma once
/// GRPO (Shao et al. 2024): several answers per prompt, advantages normalised within
/// each prompt's group, no critic, the KL to the reference as a loss term (k3 by
/// default) or as a per-token reward penalty.
#include <troupe/rl/algorithm.hpp>
#include <troupe/rl/kl.hpp>

namespace troupe::rl {

/// GRPO's settings; each overridable by its name in AlgorithmOptions.
struct GrpoConfig {
  int64_t samples_per_prompt = 4;  ///< the group size G (>= 2)
  double cliprange = 0.2;          ///< ratio clip of the surrogate
  double kl_coef = 0.04;           ///< beta, weight of the KL term (0 = no reference model)
  /// The KL estimator (option `kl_estimator`: 1, 2 or 3 for k1, k2, k3).
  KlEstimator kl_estimator = KlEstimator::K3;
  /// The KL as a reward penalty instead of a loss term (OpenRLHF's group_norm with the KL
  /// in the reward): each token's advantage gets -kl_coef times the KL summed from that
  /// token to the end of the answer (sampling policy's log-probs, gamma 1).
  bool kl_in_reward = false;
  double reward_clip = 0.0;        ///< > 0: scores are clamped to +-this before the groups (0 = off)
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
  /// token, groups from prompt_groups (a group that lost answers to the short-answer
  /// filter is smaller; a lone row gets 0), with kl_in_reward minus kl_coef * the KL
  /// from each token to the end;
  /// exp.returns and exp.rewards stay unset.
  void compute_advantages(Experience& exp) override;
  /// Per action token clipped_surrogate(...) + kl_coef * KL(logprobs, ref_logprobs) (no
  /// KL term with kl_in_reward), aggregated as GrpoConfig::token_mean says.
  torch::Tensor policy_loss(const torch::Tensor& logprobs, const Experience& exp) const override;
  /// Its losses divide by the minibatch's counts (loss_reduction.hpp).
  bool supports_micro_batches() const override { return true; }

  const GrpoConfig& config() const { return config_; }

 private:
  GrpoConfig config_;
};

}  // namespace troupe::rl
