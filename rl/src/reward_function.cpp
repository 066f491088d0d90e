#include <troupe/rl/reward_function.hpp>

#include <cmath>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::rl {
namespace {

class CallableRewardFunction : public RewardFunction {
 public:
  explicit CallableRewardFunction(RewardCallable fn) : fn_(std::move(fn)) {}
  double score(const std::string& prompt, const std::string& response) const override { return fn_(prompt, response); }

 private:
  RewardCallable fn_;
};

std::string preview(const std::string& text) {
  return text.size() <= 40 ? text : text.substr(0, 40) + "...";
}

}  // namespace

std::vector<double> RewardFunction::score_rows(const std::vector<std::string>& prompts,
                                               const std::vector<std::string>& responses) const {
  std::vector<double> scores;
  scores.reserve(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) scores.push_back(score(prompts[i], responses[i]));
  return scores;
}

torch::Tensor RewardFunction::score_batch(const std::vector<std::string>& prompts,
                                          const std::vector<std::string>& responses) const {
  if (prompts.size() != responses.size())
    throw Error("RewardFunction::score_batch: " + std::to_string(prompts.size()) + " prompts but " +
                std::to_string(responses.size()) + " responses");
  const auto values = score_rows(prompts, responses);
  if (values.size() != prompts.size())
    throw Error("reward function returned " + std::to_string(values.size()) + " scores for " +
                std::to_string(prompts.size()) + " rows");
  auto scores = torch::empty({static_cast<int64_t>(prompts.size())}, torch::kFloat);  // (B,)
  auto out = scores.accessor<float, 1>();
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i]))
      throw Error("reward function returned " + std::to_string(values[i]) + " for row " + std::to_string(i) +
                  " (response \"" + preview(responses[i]) + "\")");
    out[static_cast<int64_t>(i)] = static_cast<float>(values[i]);
  }
  return scores;
}

std::shared_ptr<RewardFunction> make_reward_function(RewardCallable fn) {
  if (!fn) throw Error("make_reward_function: empty callable");
  return std::make_shared<CallableRewardFunction>(std::move(fn));
}

RewardFunctionRegistry& RewardFunctionRegistry::global() {
  static auto* registry = new RewardFunctionRegistry();  // never destroyed, like AlgorithmRegistry's
  return *registry;
}

void RewardFunctionRegistry::register_reward_function(const std::string& name, RewardCallable fn) {
  if (!fn) throw Error("register_reward_function: '" + name + "' has no callable");
  auto shared = make_reward_function(std::move(fn));
  register_reward_factory(name, [shared] { return shared; });
}

void RewardFunctionRegistry::register_reward_factory(const std::string& name, RewardFunctionFactory factory) {
  if (name.empty()) throw Error("register_reward_function: the name is empty");
  if (!factory) throw Error("register_reward_function: '" + name + "' has no factory");
  std::lock_guard<std::mutex> lock(mutex_);
  if (!factories_.emplace(name, std::move(factory)).second)
    throw Error("register_reward_function: a reward function named '" + name + "' is already registered");
}

bool RewardFunctionRegistry::contains(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return factories_.count(name) > 0;
}

std::vector<std::string> RewardFunctionRegistry::names() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const auto& entry : factories_) out.push_back(entry.first);
  return out;
}

std::shared_ptr<RewardFunction> RewardFunctionRegistry::create(const std::string& name) const {
  RewardFunctionFactory factory;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = factories_.find(name);
    if (it == factories_.end()) {
      std::string known;
      for (const auto& entry : factories_) known += (known.empty() ? "" : ", ") + entry.first;
      throw Error("unknown reward function '" + name + "' (known: " + (known.empty() ? "none" : known) + ")");
    }
    factory = it->second;
  }
  auto fn = factory();
  if (!fn) throw Error("reward function '" + name + "': its factory returned nothing");
  return fn;
}

}  // namespace troupe::rl
