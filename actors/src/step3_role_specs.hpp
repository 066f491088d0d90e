#pragma once
/// The actor, critic, reference and reward of step 3 described as RoleSpecs (string
/// options a `troupe worker` can receive), and the factories that build those roles from
/// a spec. The controller builds its own roles through the same factories, so a role is
/// the same whether it runs in the controller's process or in a worker's. Each process
/// hands its ProcessRoles to the factories: a reference built beside the actor shares it.
#include <cstdint>
#include <memory>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/actors/role_factories.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/actors/step3_trainer.hpp>

namespace troupe::actors {

class PolicyRole;

/// The actor: model, LoRA, checkpointing, optimizer and schedule (`total_steps`),
/// rollout sampling (`generation`, with its pad and end tokens), EMA, the mixture
/// corpus, the algorithm's policy loss and the PPO minibatching.
RoleSpec actor_role_spec(const Step3Config& config, const models::GenerationOptions& generation, int64_t total_steps);
/// The actor of `spec` (factory "step3_actor"), as the controller's own rank needs it:
/// with its hybrid engine at hand for evaluation and a shared-base reference. Recorded in
/// `here` for the reference built after it.
std::shared_ptr<PolicyRole> make_policy_role(const RoleSpec& spec, ProcessRoles& here);

/// The critic: model, LoRA, checkpointing, optimizer and schedule (`total_steps`
/// optimizer steps), the algorithm's value loss and the PPO minibatching.
RoleSpec critic_role_spec(const Step3Config& config, int64_t total_steps);
/// A frozen copy of the actor's initial weights (used when the reference runs outside
/// the actor's process, where it cannot share the actor's base).
RoleSpec reference_role_spec(const Step3Config& config);
/// The reference policy of `spec` (factory "step3_reference"). Beside the actor of the
/// same model in this process (the one `here` holds): the actor's base when its LoRA adapters are frozen-base,
/// else a frozen copy of the actor (under ZeRO stage 3, where a rank holds only chunks
/// of the actor, the copy is loaded from the actor's initial checkpoint instead).
/// Elsewhere: loaded from the checkpoint.
std::shared_ptr<engine::ReferencePolicy> make_reference_policy(const RoleSpec& spec, const ProcessRoles& here);
/// The group a reference of `spec` partitions a frozen copy over: its data-parallel
/// ranks when the spec says zero_stage 3 (the topology's roles.reference.zero_stage),
/// else none. ReferenceRole leaves a reference that shares the actor's weights whole.
std::shared_ptr<DataParallel> reference_partition_group(const RoleSpec& spec);
/// The reward model (reward_model, else critic_model), the reward function, or the
/// reward endpoint (reward_url, with reward_timeout).
RoleSpec reward_role_spec(const Step3Config& config);

/// The device rank `rank` of a role runs on: a bare "cuda" gives each rank its own
/// device, rank modulo the `visible_cuda_devices` (as DeepSpeed's launcher hands each
/// process its LOCAL_RANK); an explicit "cuda:N" or the CPU stays as given.
torch::Device rank_device(const torch::Device& configured, int rank, int visible_cuda_devices);

/// Factories "step3_actor", "step3_critic", "step3_reference", "step3_reward". Each throws
/// troupe::Error naming the role and the option when a spec is incomplete or malformed.
RoleFactories step3_role_factories();

}  // namespace troupe::actors
