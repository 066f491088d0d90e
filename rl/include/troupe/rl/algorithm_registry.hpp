#pragma once
/// Algorithms by name, so `--algo NAME` can pick a built-in or one an app registered.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <troupe/rl/algorithm.hpp>

namespace troupe::rl {

/// Makes an algorithm from its options; reads the keys it knows with options.get*().
using AlgorithmFactory = std::function<std::unique_ptr<Algorithm>(const AlgorithmOptions& options)>;

class AlgorithmRegistry {
 public:
  /// An empty registry (tests, or an app that wants only its own algorithms).
  AlgorithmRegistry() = default;

  /// The process-wide registry, holding the built-in algorithms from the start.
  static AlgorithmRegistry& global();

  /// Adds `name`; throws troupe::Error if the name is empty or already registered.
  void register_algorithm(const std::string& name, AlgorithmFactory factory);
  bool contains(const std::string& name) const;
  /// Registered names, sorted.
  std::vector<std::string> names() const;

  /// Makes the algorithm `name` with `options`. Throws troupe::Error listing the known
  /// names when `name` is unknown, and naming the keys when the factory read not all
  /// of `options` (a misspelt or misplaced setting).
  std::unique_ptr<Algorithm> create(const std::string& name, const AlgorithmOptions& options = {}) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, AlgorithmFactory> factories_;
};

/// Registers the built-in algorithms into `registry`, each made with its config's
/// from_options: "ppo", "grpo", "dr_grpo", "rloo", "reinforce++", "reinforce++_baseline".
void register_builtin_algorithms(AlgorithmRegistry& registry);

}  // namespace troupe::rl
