#include <troupe/rl/algorithm_registry.hpp>

#include <troupe/common/error.hpp>
#include <troupe/rl/dr_grpo.hpp>
#include <troupe/rl/grpo.hpp>
#include <troupe/rl/ppo.hpp>
#include <troupe/rl/reinforce_plus_plus.hpp>
#include <troupe/rl/reinforce_plus_plus_baseline.hpp>
#include <troupe/rl/remax.hpp>
#include <troupe/rl/rloo.hpp>

namespace troupe::rl {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out.empty() ? "none" : out;
}

}  // namespace

AlgorithmRegistry& AlgorithmRegistry::global() {
  static AlgorithmRegistry* registry = [] {
    auto* r = new AlgorithmRegistry();  // never destroyed: apps may use it during static teardown
    register_builtin_algorithms(*r);
    return r;
  }();
  return *registry;
}

void AlgorithmRegistry::register_algorithm(const std::string& name, AlgorithmFactory factory) {
  if (name.empty()) throw Error("register_algorithm: the name is empty");
  if (!factory) throw Error("register_algorithm: '" + name + "' has no factory");
  std::lock_guard<std::mutex> lock(mutex_);
  if (!factories_.emplace(name, std::move(factory)).second)
    throw Error("register_algorithm: an algorithm named '" + name + "' is already registered");
}

bool AlgorithmRegistry::contains(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return factories_.count(name) > 0;
}

std::vector<std::string> AlgorithmRegistry::names() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const auto& entry : factories_) out.push_back(entry.first);
  return out;
}

std::unique_ptr<Algorithm> AlgorithmRegistry::create(const std::string& name, const AlgorithmOptions& options) const {
  AlgorithmFactory factory;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = factories_.find(name);
    if (it == factories_.end()) {
      std::vector<std::string> known;
      for (const auto& entry : factories_) known.push_back(entry.first);
      throw Error("unknown RL algorithm '" + name + "' (known: " + join(known) + ")");
    }
    factory = it->second;
  }
  AlgorithmOptions copy;  // fresh read-tracking for this factory
  for (const auto& [key, value] : options.values()) copy.set(key, value);
  auto algorithm = factory(copy);
  if (!algorithm) throw Error("RL algorithm '" + name + "': its factory returned nothing");
  const auto unread = copy.unread_keys();
  if (!unread.empty())
    throw Error("RL algorithm '" + name + "' does not use the option(s) " + join(unread));
  return algorithm;
}

void register_builtin_algorithms(AlgorithmRegistry& registry) {
  registry.register_algorithm("ppo", [](const AlgorithmOptions& options) {
    return std::make_unique<Ppo>(PpoConfig::from_options(options));
  });
  registry.register_algorithm("grpo", [](const AlgorithmOptions& options) {
    return std::make_unique<Grpo>(GrpoConfig::from_options(options));
  });
  registry.register_algorithm("dr_grpo", [](const AlgorithmOptions& options) {
    return std::make_unique<DrGrpo>(DrGrpoConfig::from_options(options));
  });
  registry.register_algorithm("rloo", [](const AlgorithmOptions& options) {
    return std::make_unique<Rloo>(RlooConfig::from_options(options));
  });
  registry.register_algorithm("reinforce++", [](const AlgorithmOptions& options) {
    return std::make_unique<ReinforcePlusPlus>(ReinforcePlusPlusConfig::from_options(options));
  });
  registry.register_algorithm("reinforce++_baseline", [](const AlgorithmOptions& options) {
    return std::make_unique<ReinforcePlusPlusBaseline>(ReinforcePlusPlusBaseline::config_from_options(options));
  });
  registry.register_algorithm("remax", [](const AlgorithmOptions& options) {
    return std::make_unique<Remax>(RemaxConfig::from_options(options));
  });
}

}  // namespace troupe::rl
