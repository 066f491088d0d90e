#pragma once
/// Reward functions the CLI offers by name (`--reward_function`, `--eval_function`).

namespace troupe::apps {

/// Registers "demo_gold" (the demo task's gold scorer, 0..100) and "demo_gold_reward"
/// (the same mapped to -5..5 for PPO) once.
void register_builtin_reward_functions();

}  // namespace troupe::apps
