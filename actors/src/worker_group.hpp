#pragma once
/// Worker groups: N rank actors of one role behind one handle of the same interface.
/// A request to the group fans out to every rank (each takes its rows by rank) and the
/// replies are gathered: tickets concatenated in rank order, metrics averaged over
/// ranks, states listed. The first rank's error answers the whole request. The group
/// monitors its ranks: once one is down, pending and later requests fail at once with
/// the loss, so a one-rank group also serves as a fail-fast guard around a remote role.
#include <vector>

#include <caf/actor_system.hpp>

#include <troupe/actors/critic_actor.hpp>
#include <troupe/actors/policy_actor.hpp>
#include <troupe/actors/reference_actor.hpp>
#include <troupe/actors/reward_actor.hpp>

namespace troupe::actors {

/// Group handles; `ranks` in rank order, at least one. Throws troupe::Error when empty.
PolicyActor spawn_policy_group(caf::actor_system& system, std::vector<PolicyActor> ranks);
CriticActor spawn_critic_group(caf::actor_system& system, std::vector<CriticActor> ranks);
ReferenceActor spawn_reference_group(caf::actor_system& system, std::vector<ReferenceActor> ranks);
RewardActor spawn_reward_group(caf::actor_system& system, std::vector<RewardActor> ranks);

/// The mean of each metric over `per_rank`; a metric missing on some rank is averaged
/// over the ranks that report it.
Metrics average_metrics(const std::vector<Metrics>& per_rank);

}  // namespace troupe::actors
