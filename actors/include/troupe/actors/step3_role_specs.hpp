#pragma once
/// The critic, reference and reward of step 3 described as RoleSpecs (string options a
/// `troupe worker` can receive), and the factories that build those roles from a spec.
/// The controller builds its own critic and reward through the same factories, so a role
/// is the same whether it runs in the controller's process or in a worker's.
#include <cstdint>

#include <troupe/actors/role_factories.hpp>
#include <troupe/actors/step3_trainer.hpp>

namespace troupe::actors {

/// The critic: model, LoRA, checkpointing, optimizer and schedule (`total_steps`
/// optimizer steps), the algorithm's value loss and the PPO minibatching.
RoleSpec critic_role_spec(const Step3Config& config, int64_t total_steps);
/// A frozen copy of the actor's initial weights (used when the reference runs outside
/// the actor's process, where it cannot share the actor's base).
RoleSpec reference_role_spec(const Step3Config& config);
/// The reward model (reward_model, else critic_model) or the reward function.
RoleSpec reward_role_spec(const Step3Config& config);

/// Factories "step3_critic", "step3_reference", "step3_reward". Each throws
/// troupe::Error naming the role and the option when a spec is incomplete or malformed.
RoleFactories step3_role_factories();

}  // namespace troupe::actors
