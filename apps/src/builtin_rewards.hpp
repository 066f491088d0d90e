#pragma once
/// Reward functions the CLI offers by name (`--reward_function`, `--eval_function`).

namespace troupe::apps {

/// Registers "demo_gold" (the demo task's gold scorer, 0..100) once.
void register_builtin_reward_functions();

}  // namespace troupe::apps
