#pragma once
/// RLOO, REINFORCE leave-one-out (Ahmadian et al. 2024, "Back to Basics: Revisiting
/// REINFORCE Style Optimization for Learning from Human Feedback in LLMs"): k answers
/// per prompt, each answer's baseline the mean reward of the other k - 1; the KL to the
/// reference a penalty in the (sequence-level) reward; no critic.
#include <troupe/rl/algorithm.hpp>
#include <troupe/rl/kl.hpp>
#include <troupe/rl/policy_loss.hpp>
#include <troupe/rl/reward_normalization.hpp>

namespace troupe::rl {

/// RLOO's settings; each overridable by its name in AlgorithmOptions (TRL's RLOOConfig
/// calls samples_per_prompt rloo_k and whiten_advantages normalize_advantage).
struct RlooConfig {
  int64_t samples_per_prompt = 4;  ///< k (>= 2)
  double kl_coef = 0.05;           ///< beta of the KL penalty in the reward (0 = none)
  /// How the penalty's per-token KL is estimated (option `kl_estimator` 1, 2, 3); summed over the answer.
  KlEstimator kl_estimator = KlEstimator::K1;
  double cliprange = 0.2;          ///< ratio clip of the surrogate
  /// Standardise the per-answer advantages over the batch: (A - mean) / (std + 1e-8).
  bool whiten_advantages = false;
  RewardOptions reward;            ///< normalize_reward, reward_clip
  /// true (default): one mean over all action tokens; false: per answer, then over answers.
  bool token_mean = true;

  static RlooConfig from_options(const AlgorithmOptions& options);
};

class Rloo : public Algorithm {
 public:
  explicit Rloo(RlooConfig config = {}) : config_(config), normalizer_(config.reward) {}

  std::string name() const override { return "rloo"; }
  AlgorithmRoles roles() const override { return {false, config_.kl_coef > 0, RewardSource::Any}; }
  int64_t samples_per_prompt() const override { return config_.samples_per_prompt; }

  /// R = score - kl_coef * sum over the answer of the KL (sampling policy vs reference),
  /// score normalised and clipped first; advantage = R minus the mean R of the other
  /// rows of its group (prompt_groups; a lone row gets 0), optionally standardised, on
  /// every action token of exp.advantages (B, A).
  void compute_advantages(Experience& exp) override;
  /// clipped_policy_loss without a KL term (the KL is in the reward).
  torch::Tensor policy_loss(const torch::Tensor& logprobs, const Experience& exp) const override;
  /// Its losses divide by the minibatch's counts (loss_reduction.hpp).
  bool supports_micro_batches() const override { return true; }

  const RlooConfig& config() const { return config_; }

  /// The running reward statistics (with normalize_reward running).
  std::map<std::string, double> state() const override { return normalizer_.running().state(); }
  void restore_state(const std::map<std::string, double>& state) override { normalizer_.running().restore_state(state); }

 private:
  RlooConfig config_;
  RewardNormalizer normalizer_;
};

}  // namespace troupe::rl
