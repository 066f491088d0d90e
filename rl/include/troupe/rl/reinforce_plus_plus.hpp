#pragma once
/// REINFORCE++ (Hu 2025, "REINFORCE++: A Simple and Efficient Approach for Aligning Large
/// Language Models"), as OpenRLHF's advantage_estimator "reinforce": a per-token reward of
/// -kl_coef * KL plus the sequence reward on the last answer token, discounted returns,
/// advantages whitened over the whole batch, the clipped surrogate, no critic.
#include <troupe/rl/algorithm.hpp>
#include <troupe/rl/kl.hpp>
#include <troupe/rl/reward_normalization.hpp>

namespace troupe::rl {

/// REINFORCE++'s settings (and REINFORCE++-baseline's); each overridable by its name in
/// AlgorithmOptions. OpenRLHF calls kl_coef init_kl_coef and samples_per_prompt
/// n_samples_per_prompt.
struct ReinforcePlusPlusConfig {
  int64_t samples_per_prompt = 1;             ///< answers per prompt (the baseline variant: >= 2, default 4)
  double kl_coef = 0.01;                      ///< weight of the per-token KL penalty (0 = none)
  KlEstimator kl_estimator = KlEstimator::K1; ///< option `kl_estimator` 1, 2, 3
  double gamma = 1.0;                         ///< discount of the returns (the baseline variant: always 1)
  double cliprange = 0.2;                     ///< ratio clip of the surrogate
  /// Whiten the returns over all action tokens of the batch (OpenRLHF's normalisation:
  /// population variance); false leaves advantages = returns.
  bool whiten_advantages = true;
  RewardOptions reward;                       ///< normalize_reward, reward_clip
  /// true (default): one mean over all action tokens; false: per answer, then over answers.
  bool token_mean = true;
  /// Subtract each prompt group's mean score before the KL shaping (REINFORCE++-baseline).
  bool group_baseline = false;

  /// The keys above; with `group_baseline` (REINFORCE++-baseline's keys) samples_per_prompt
  /// defaults to 4 and must be >= 2, and gamma is not an option. Throws troupe::Error
  /// naming the algorithm and the option for values out of range.
  static ReinforcePlusPlusConfig from_options(const AlgorithmOptions& options, bool group_baseline = false);
};

class ReinforcePlusPlus : public Algorithm {
 public:
  explicit ReinforcePlusPlus(ReinforcePlusPlusConfig config = {}) : config_(config), normalizer_(config.reward) {}

  std::string name() const override { return "reinforce++"; }
  AlgorithmRoles roles() const override { return {false, config_.kl_coef > 0, RewardSource::Any}; }
  int64_t samples_per_prompt() const override { return config_.samples_per_prompt; }

  /// Scores normalised and clipped (and group-centred with group_baseline), then
  /// exp.rewards (B, T-1) = kl_shaped_rewards on the answer positions (0 elsewhere),
  /// exp.returns (B, A) = discounted_returns, exp.advantages (B, A) = the returns
  /// normalised over the batch's action tokens (or as they are).
  void compute_advantages(Experience& exp) override;
  /// clipped_policy_loss without a KL term (the KL is in the reward).
  torch::Tensor policy_loss(const torch::Tensor& logprobs, const Experience& exp) const override;
  /// Its losses divide by the minibatch's counts (loss_reduction.hpp).
  bool supports_micro_batches() const override { return true; }

  const ReinforcePlusPlusConfig& config() const { return config_; }

  /// The running reward statistics (with normalize_reward running).
  std::map<std::string, double> state() const override { return normalizer_.running().state(); }
  void restore_state(const std::map<std::string, double>& state) override { normalizer_.running().restore_state(state); }

 private:
  ReinforcePlusPlusConfig config_;
  RewardNormalizer normalizer_;
};

}  // namespace troupe::rl
