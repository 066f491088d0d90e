#pragma once
/// The interface every RL algorithm implements: which roles it needs and how it turns
/// an Experience into advantages and losses. The step-3 trainer only talks to this.
#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include <troupe/rl/experience.hpp>

namespace troupe::rl {

/// Where an algorithm's reward may come from.
enum class RewardSource {
  Any,       ///< a reward model or a reward function, whichever the run selects
  Model,     ///< only a reward model (e.g. it needs per-token values of the reward head)
  Function,  ///< only a reward function
  None,      ///< no reward (an offline algorithm)
};

/// The model roles an algorithm needs besides the policy.
struct AlgorithmRoles {
  bool critic = false;     ///< a value model trained alongside (PPO's GAE)
  bool reference = false;  ///< a frozen reference policy (KL penalty or KL loss)
  RewardSource reward = RewardSource::Any;
};

/// Numeric settings by name, e.g. the CLI's overrides of the PPO constants
/// ({"kl_ctl", 0.05}). A factory reads the keys it knows; AlgorithmRegistry::create
/// rejects keys nobody read, so a misspelt flag is an error rather than silently ignored.
class AlgorithmOptions {
 public:
  AlgorithmOptions() = default;
  AlgorithmOptions(std::initializer_list<std::pair<const std::string, double>> values) : values_(values) {}

  void set(const std::string& key, double value) { values_[key] = value; }
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  /// The value of `key`, or `fallback` when it is not set; marks the key as read.
  double get(const std::string& key, double fallback) const;
  /// As get(), but the value must be a whole number (throws troupe::Error otherwise).
  int64_t get_int(const std::string& key, int64_t fallback) const;
  /// As get(), but the value must be 0 or 1.
  bool get_bool(const std::string& key, bool fallback) const;
  /// Keys that were set but never read, in order.
  std::vector<std::string> unread_keys() const;
  const std::map<std::string, double>& values() const { return values_; }

 private:
  std::map<std::string, double> values_;
  mutable std::set<std::string> read_;
};

/// An RL algorithm on plain tensors. The trainer generates `samples_per_prompt()`
/// answers per prompt (consecutive rows), fills an Experience with what roles() asks
/// for, calls compute_advantages() once, then per minibatch policy_loss() (and
/// value_loss() when roles().critic) on the new log-probs / values of the same rows.
class Algorithm {
 public:
  virtual ~Algorithm() = default;

  virtual std::string name() const = 0;
  virtual AlgorithmRoles roles() const = 0;
  /// Answers generated per prompt; algorithms that compare answers need more than one.
  virtual int64_t samples_per_prompt() const { return 1; }
  /// Whether the trainer also generates one greedy answer per prompt, scores it with the
  /// same reward, and hands that score to compute_advantages as exp.baseline_reward (B,),
  /// each row its prompt's (ReMax's baseline).
  virtual bool needs_greedy_baseline() const { return false; }

  /// Fills exp.advantages (B, A) (and exp.returns, exp.rewards when the algorithm has
  /// them) from logprobs, ref_logprobs, values and reward_score. Not differentiable.
  virtual void compute_advantages(Experience& exp) = 0;

  /// The policy loss for `logprobs` (B, T-1), the current policy's log-probs of
  /// exp.sequences (gather_log_probs), differentiable; a scalar.
  virtual torch::Tensor policy_loss(const torch::Tensor& logprobs, const Experience& exp) const = 0;

  /// The critic loss for `values` (B, T-1), the current critic's values[:, :-1]; a
  /// scalar. The default throws troupe::Error: only algorithms with a critic have one.
  virtual torch::Tensor value_loss(const torch::Tensor& values, const Experience& exp) const;

  /// Whether policy_loss() and value_loss() may run on micro-batches of a minibatch
  /// (step 3's --max_tokens_per_microbatch), which the trainer refuses otherwise. Say
  /// true only when both losses
  ///   - divide by the minibatch's counts, exp.minibatch_totals when set (rows, action
  ///     tokens, answer width), never by counts of the rows they are given: the
  ///     reductions of loss_reduction.hpp and clipped_policy_loss do this, masked_mean
  ///     and ppo_actor_loss do not;
  ///   - add up over rows: no term mixes rows, and none depends on their order or on the
  ///     batch's width (a micro-batch holds some of the rows, sorted by length, with the
  ///     padding they all share cut off).
  /// Then each micro-batch's loss is its share of the minibatch's, and the gradients the
  /// trainer accumulates over them are the minibatch's. The built-in algorithms do.
  virtual bool supports_micro_batches() const { return false; }

  /// What the algorithm carries from cycle to cycle (running reward statistics, an
  /// adaptive KL coefficient), for step-3 checkpoints; empty for a stateless one.
  /// restore_state() takes what state() gave, so a resumed run continues exactly.
  virtual std::map<std::string, double> state() const { return {}; }
  virtual void restore_state(const std::map<std::string, double>& state) {}
};

}  // namespace troupe::rl
