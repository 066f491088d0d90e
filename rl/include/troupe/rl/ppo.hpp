#pragma once
/// PPO as DeepSpeed-Chat's step 3 runs it: KL-penalised rewards, GAE with a critic,
/// clipped actor and value losses.
#include <troupe/rl/algorithm.hpp>

namespace troupe::rl {

/// PPO's constants, REFERENCE.md defaults; each overridable by its name in AlgorithmOptions.
struct PpoConfig {
  double kl_ctl = 0.1;             ///< weight of the per-token KL penalty in the reward
  double clip_reward_value = 5.0;  ///< the reward score is clamped to +-this
  double cliprange = 0.2;          ///< actor ratio clip
  double cliprange_value = 0.2;    ///< critic value clip around the old values
  double gamma = 1.0;              ///< discount
  double lam = 0.95;               ///< GAE lambda
  bool whiten_advantages = false;  ///< whiten advantages over the batch's actions (off in DeepSpeed-Chat)

  /// Defaults overridden by the keys above (whiten_advantages as 0/1); throws
  /// troupe::Error for values out of range (negative clip ranges, gamma or lam outside [0, 1]).
  static PpoConfig from_options(const AlgorithmOptions& options);
};

class Ppo : public Algorithm {
 public:
  explicit Ppo(PpoConfig config = {}) : config_(config) {}

  std::string name() const override { return "ppo"; }
  /// A critic always; the reference only while the KL penalty is on.
  AlgorithmRoles roles() const override { return {true, config_.kl_ctl > 0, RewardSource::Any}; }

  /// rewards = compute_rewards(...), values = zero_past_end(values), then GAE:
  /// sets exp.rewards (B, T-1), exp.values (B, T-1), exp.advantages and exp.returns (B, A).
  void compute_advantages(Experience& exp) override;
  /// ppo_actor_loss over answer positions [start, T-1) with exp.logprobs as the old ones,
  /// its token mean over the minibatch's action tokens.
  torch::Tensor policy_loss(const torch::Tensor& logprobs, const Experience& exp) const override;
  /// ppo_value_loss over answer positions with exp.values as the old values, its token
  /// mean over the minibatch's action tokens.
  torch::Tensor value_loss(const torch::Tensor& values, const Experience& exp) const override;
  /// Both losses divide by the minibatch's counts (loss_reduction.hpp).
  bool supports_micro_batches() const override { return true; }

  const PpoConfig& config() const { return config_; }

 private:
  PpoConfig config_;
};

}  // namespace troupe::rl
