#include "builtin_rewards.hpp"

#include <mutex>

#include <troupe/data/demo_gold.hpp>
#include <troupe/rl/reward_function.hpp>

namespace troupe::apps {

void register_builtin_reward_functions() {
  static std::once_flag once;
  std::call_once(once, [] { rl::RewardFunctionRegistry::global().register_reward_function("demo_gold", data::gold_score); });
}

}  // namespace troupe::apps
