#pragma once
/// Rewards from C++ code instead of a reward model: a scorer of (prompt, response)
/// texts (the demo's gold scorer is one), selectable by name.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/types.h>

namespace troupe::rl {

/// Scores a response to a prompt; higher is better. Must be safe to call from several
/// threads at once if the trainer scores concurrently.
class RewardFunction {
 public:
  virtual ~RewardFunction() = default;
  virtual double score(const std::string& prompt, const std::string& response) const = 0;

  /// score_rows() of the pairs as reward_score (B,) float32. Throws troupe::Error when
  /// the sizes differ, a scorer returns another number of scores, or a score is not
  /// finite (naming the row), so NaN never reaches PPO.
  torch::Tensor score_batch(const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses) const;

 protected:
  /// One score per pair, in order; score_batch checks what comes back. The default
  /// calls score() per row; a scorer that is cheaper per batch (one request to a remote
  /// server) overrides it. `prompts` and `responses` have the same size.
  virtual std::vector<double> score_rows(const std::vector<std::string>& prompts,
                                         const std::vector<std::string>& responses) const;
};

using RewardCallable = std::function<double(const std::string& prompt, const std::string& response)>;
using RewardFunctionFactory = std::function<std::shared_ptr<RewardFunction>()>;

/// A RewardFunction calling `fn`.
std::shared_ptr<RewardFunction> make_reward_function(RewardCallable fn);

/// Reward functions by name (`--reward_function NAME`). Starts empty: the data layer
/// or an app registers its scorers (e.g. the demo's gold scorer).
class RewardFunctionRegistry {
 public:
  RewardFunctionRegistry() = default;
  static RewardFunctionRegistry& global();

  /// Adds `name`; throws troupe::Error if the name is empty or already registered.
  void register_reward_function(const std::string& name, RewardCallable fn);
  void register_reward_factory(const std::string& name, RewardFunctionFactory factory);
  bool contains(const std::string& name) const;
  std::vector<std::string> names() const;
  /// Throws troupe::Error listing the known names when `name` is unknown.
  std::shared_ptr<RewardFunction> create(const std::string& name) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, RewardFunctionFactory> factories_;
};

}  // namespace troupe::rl
