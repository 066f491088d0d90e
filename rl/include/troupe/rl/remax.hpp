#pragma once
/// ReMax (Li et al. 2023, "ReMax: A Simple, Effective, and Efficient Reinforcement
/// Learning Method for Aligning Large Language Models"): REINFORCE whose baseline for a
/// prompt is the reward of the greedy answer to it. Per-token rewards -kl_coef * KL plus
/// the score on the last answer token, returns summed to the answer's end, advantage =
/// return - the greedy answer's score; no critic.
#include <troupe/rl/algorithm.hpp>
#include <troupe/rl/kl.hpp>

namespace troupe::rl {

/// ReMax's settings; each overridable by its name in AlgorithmOptions.
struct RemaxConfig {
  int64_t samples_per_prompt = 1;              ///< sampled answers per prompt (the paper: 1)
  double kl_coef = 0.01;                       ///< weight of the per-token KL penalty in the reward (0 = none)
  KlEstimator kl_estimator = KlEstimator::K1;  ///< option `kl_estimator` 1, 2, 3
  double cliprange = 0.2;                      ///< ratio clip of the surrogate (at ratio 1 it is REINFORCE)
  /// true (default): one mean over all action tokens; false: per answer, then over answers.
  bool token_mean = true;

  /// Throws troupe::Error naming the algorithm and the option for values out of range.
  static RemaxConfig from_options(const AlgorithmOptions& options);
};

class Remax : public Algorithm {
 public:
  explicit Remax(RemaxConfig config = {}) : config_(config) {}

  std::string name() const override { return "remax"; }
  AlgorithmRoles roles() const override { return {false, config_.kl_coef > 0, RewardSource::Any}; }
  int64_t samples_per_prompt() const override { return config_.samples_per_prompt; }
  bool needs_greedy_baseline() const override { return true; }

  /// exp.rewards (B, T-1) = -kl_coef * KL on the answer positions plus reward_score on
  /// each row's last action (0 elsewhere); exp.returns (B, A) = the rewards summed from
  /// each position to the answer's end; exp.advantages (B, A) = returns - baseline_reward
  /// on the action tokens, 0 elsewhere. Needs exp.baseline_reward (B,).
  void compute_advantages(Experience& exp) override;
  /// clipped_policy_loss without a KL term (the KL is in the reward).
  torch::Tensor policy_loss(const torch::Tensor& logprobs, const Experience& exp) const override;
  /// Its losses divide by the minibatch's counts (loss_reduction.hpp).
  bool supports_micro_batches() const override { return true; }

  const RemaxConfig& config() const { return config_; }

 private:
  RemaxConfig config_;
};

}  // namespace troupe::rl
