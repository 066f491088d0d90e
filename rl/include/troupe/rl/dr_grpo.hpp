#pragma once
/// Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical
/// Perspective"): GRPO without its two biases. Advantages are the score minus the
/// group's mean, not divided by the group's std, and the loss sums over tokens and
/// divides by a constant (rows x the generation length) instead of by each answer's
/// length. No critic; the paper runs without a KL term (kl_coef 0).
#include <troupe/rl/algorithm.hpp>
#include <troupe/rl/kl.hpp>
#include <troupe/rl/reward_normalization.hpp>

namespace troupe::rl {

/// Dr. GRPO's settings; each overridable by its name in AlgorithmOptions.
struct DrGrpoConfig {
  int64_t samples_per_prompt = 4;              ///< the group size G (>= 2)
  double cliprange = 0.2;                      ///< ratio clip of the surrogate
  double kl_coef = 0.0;                        ///< weight of a KL loss term (0 = none, the paper's setting)
  KlEstimator kl_estimator = KlEstimator::K3;  ///< of that term (option `kl_estimator` 1, 2, 3)
  /// The constant the token sum is divided by, per row: the generation limit
  /// (--max_answer_seq_len; OpenRLHF's generate_max_len, TRL's max_completion_length).
  /// 0 = the batch's answer width A, which is the longest answer of the batch, so it
  /// varies from batch to batch: set it to the generation limit.
  int64_t generate_max_len = 0;
  RewardOptions reward;                        ///< normalize_reward, reward_clip

  static DrGrpoConfig from_options(const AlgorithmOptions& options);
};

class DrGrpo : public Algorithm {
 public:
  explicit DrGrpo(DrGrpoConfig config = {}) : config_(config), normalizer_(config.reward) {}

  std::string name() const override { return "dr_grpo"; }
  AlgorithmRoles roles() const override { return {false, config_.kl_coef > 0, RewardSource::Any}; }
  int64_t samples_per_prompt() const override { return config_.samples_per_prompt; }

  /// exp.advantages (B, A) = group_centered(score) (groups from prompt_groups; the score
  /// normalised and clipped first) on every action token.
  void compute_advantages(Experience& exp) override;
  /// clipped_policy_loss (+ kl_coef * KL) with LossAggregation::ConstantLength.
  torch::Tensor policy_loss(const torch::Tensor& logprobs, const Experience& exp) const override;
  /// Its losses divide by the minibatch's counts (loss_reduction.hpp).
  bool supports_micro_batches() const override { return true; }

  const DrGrpoConfig& config() const { return config_; }

  /// The running reward statistics (with normalize_reward running).
  std::map<std::string, double> state() const override { return normalizer_.running().state(); }
  void restore_state(const std::map<std::string, double>& state) override { normalizer_.running().restore_state(state); }

 private:
  DrGrpoConfig config_;
  RewardNormalizer normalizer_;
};

}  // namespace troupe::rl
