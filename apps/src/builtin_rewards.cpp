#include "builtin_rewards.hpp"

#include <mutex>

#include <troupe/data/demo_gold.hpp>
#include <troupe/rl/reward_function.hpp>

namespace troupe::apps {

void register_builtin_reward_functions() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto& registry = rl::RewardFunctionRegistry::global();
    registry.register_reward_function("demo_gold", data::gold_score);
    // The same grade on PPO's reward scale: 0..100 mapped to -5..5, inside the default
    // clip_reward_value, so it can drive step 3 directly (--reward_function demo_gold_reward).
    registry.register_reward_function("demo_gold_reward", [](const std::string& prompt, const std::string& response) {
      return (data::gold_score(prompt, response) - 50.0) / 10.0;
    });
  });
}

}  // namespace troupe::apps
