#pragma once
/// Spawns the role actors: each serves its typed interface by calling a RoleModel,
/// pulls inputs by ticket from a TicketStore, publishes outputs there and answers with
/// tickets. A failure inside a handler is answered with a caf::error naming the role,
/// the rank and the cause ("role critic rank 1 of 2: <cause>").
#include <memory>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <troupe/actors/critic_actor.hpp>
#include <troupe/actors/policy_actor.hpp>
#include <troupe/actors/reference_actor.hpp>
#include <troupe/actors/reward_actor.hpp>
#include <troupe/actors/role_model.hpp>
#include <troupe/actors/ticket_store.hpp>

namespace troupe::actors {

/// What a role actor is built from.
struct RoleContext {
  RoleId id;
  std::shared_ptr<RoleModel> model;
  std::shared_ptr<TicketStore> store;
};

/// Role actors run detached (a thread each): model work blocks, and a role must not
/// starve the scheduler that carries control messages.
PolicyActor spawn_policy(caf::actor_system& system, RoleContext context);
CriticActor spawn_critic(caf::actor_system& system, RoleContext context);
ReferenceActor spawn_reference(caf::actor_system& system, RoleContext context);
RewardActor spawn_reward(caf::actor_system& system, RoleContext context);

/// The actor of `context.id.role` ("actor" or "policy", "critic", "reference",
/// "reward") as a dynamically typed handle; throws troupe::Error for other names.
caf::actor spawn_role(caf::actor_system& system, RoleContext context);

/// The caf::error a role answers with when `cause` stopped a request.
caf::error role_error(const RoleId& id, const std::string& cause);

}  // namespace troupe::actors
