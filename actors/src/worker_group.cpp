/// Worker groups: fan a request out to the ranks, gather their replies.
#include "worker_group.hpp"

#include <functional>
#include <optional>

#include <caf/all.hpp>

#include <troupe/common/error.hpp>

namespace troupe::actors {
namespace {

using Ranks = std::vector<caf::actor>;

TicketList join_tickets(std::vector<TicketList>& parts) {
  TicketList joined;
  for (auto& part : parts)
    for (auto& ticket : part.tickets) joined.tickets.push_back(std::move(ticket));
  return joined;
}

RoleStates join_states(std::vector<RoleStates>& parts) {
  RoleStates joined;
  for (auto& part : parts)
    for (auto& state : part.ranks) joined.ranks.push_back(std::move(state));
  return joined;
}

caf::ok_atom join_ok(std::vector<caf::ok_atom>&) { return caf::ok_atom::value; }

/// A group's ranks and the requests still waiting on them. Only the group actor's
/// own handlers touch it, so no locking.
struct Group {
  Ranks ranks;
  std::map<size_t, std::string> lost;  // rank -> why it went down
  uint64_t next_request = 0;
  std::map<uint64_t, std::function<void(const caf::error&)>> pending;  // fail callbacks
};

using GroupPtr = std::shared_ptr<Group>;

/// Sends `request...` to every rank and delivers `combine(replies in rank order)`, or
/// the first error. CAF 0.17 has no fan_out_request, so the gather is done by hand
/// with a response promise and a counter. A request pending when a rank goes down is
/// answered with that loss at once (CAF 0.17 would leave it waiting on a dead remote).
template <class Reply, class Self, class Combine, class... Ts>
caf::typed_response_promise<Reply> fan_out(Self* self, const GroupPtr& group, Combine combine, const Ts&... request) {
  struct Gather {
    std::vector<std::optional<Reply>> replies;
    size_t remaining;
    bool done = false;
  };
  auto promise = self->template make_response_promise<Reply>();
  if (!group->lost.empty()) {
    const auto& [rank, why] = *group->lost.begin();
    promise.deliver(caf::make_error(caf::sec::runtime_error, "worker group: rank " + std::to_string(rank) + " " + why));
    return promise;
  }
  const auto& ranks = group->ranks;
  auto gather = std::make_shared<Gather>(Gather{std::vector<std::optional<Reply>>(ranks.size()), ranks.size()});
  const auto id = group->next_request++;
  group->pending[id] = [gather, promise](const caf::error& error) mutable {
    if (gather->done) return;
    gather->done = true;
    promise.deliver(error);
  };
  for (size_t i = 0; i < ranks.size(); ++i) {
    self->request(ranks[i], caf::infinite, request...)
        .then(
            [=](Reply& reply) mutable {
              if (gather->done) return;
              gather->replies[i] = std::move(reply);
              if (--gather->remaining > 0) return;
              gather->done = true;
              group->pending.erase(id);
              std::vector<Reply> replies;
              for (auto& r : gather->replies) replies.push_back(std::move(*r));
              promise.deliver(combine(replies));
            },
            [=](caf::error& error) mutable {
              if (gather->done) return;
              gather->done = true;
              group->pending.erase(id);
              promise.deliver(std::move(error));
            });
  }
  return promise;
}

/// Monitors the ranks: a rank that goes down fails every pending and later request.
template <class Self>
void watch_ranks(Self* self, const GroupPtr& group) {
  for (const auto& rank : group->ranks) self->monitor(rank);
  self->set_down_handler([self, group](caf::down_msg& down) {
    for (size_t rank = 0; rank < group->ranks.size(); ++rank) {
      if (group->ranks[rank].address() != down.source) continue;
      const auto why = "is down (" + self->system().render(down.reason) + ")";
      group->lost.emplace(rank, why);
      auto error = caf::make_error(caf::sec::runtime_error, "worker group: rank " + std::to_string(rank) + " " + why);
      auto pending = std::move(group->pending);
      group->pending.clear();
      for (auto& entry : pending) entry.second(error);
    }
  });
}

template <class Handle>
GroupPtr make_group(const std::vector<Handle>& ranks) {
  if (ranks.empty()) throw Error("worker group: needs at least one rank actor");
  auto group = std::make_shared<Group>();
  for (const auto& rank : ranks) group->ranks.push_back(caf::actor_cast<caf::actor>(rank));
  return group;
}

Metrics mean_metrics(std::vector<Metrics>& per_rank) { return average_metrics(per_rank); }

PolicyActor::behavior_type policy_group(PolicyActor::pointer self, GroupPtr ranks) {
  watch_ranks(self, ranks);
  return {[=](generate_atom a, const TicketList& t) { return fan_out<TicketList>(self, ranks, join_tickets, a, t); },
          [=](score_atom a, const TicketList& t) { return fan_out<TicketList>(self, ranks, join_tickets, a, t); },
          [=](train_atom a, const TrainRequest& r) { return fan_out<Metrics>(self, ranks, mean_metrics, a, r); },
          [=](save_atom a, const std::string& p) { return fan_out<caf::ok_atom>(self, ranks, join_ok, a, p); },
          [=](load_atom a, const std::string& p) { return fan_out<caf::ok_atom>(self, ranks, join_ok, a, p); },
          [=](checkpoint_atom a, const std::string& p) { return fan_out<caf::ok_atom>(self, ranks, join_ok, a, p); },
          [=](restore_atom a, const std::string& p) { return fan_out<caf::ok_atom>(self, ranks, join_ok, a, p); },
          [=](state_atom a) { return fan_out<RoleStates>(self, ranks, join_states, a); }};
}

CriticActor::behavior_type critic_group(CriticActor::pointer self, GroupPtr ranks) {
  watch_ranks(self, ranks);
  return {[=](score_atom a, const TicketList& t) { return fan_out<TicketList>(self, ranks, join_tickets, a, t); },
          [=](train_atom a, const TrainRequest& r) { return fan_out<Metrics>(self, ranks, mean_metrics, a, r); },
          [=](save_atom a, const std::string& p) { return fan_out<caf::ok_atom>(self, ranks, join_ok, a, p); },
          [=](load_atom a, const std::string& p) { return fan_out<caf::ok_atom>(self, ranks, join_ok, a, p); },
          [=](checkpoint_atom a, const std::string& p) { return fan_out<caf::ok_atom>(self, ranks, join_ok, a, p); },
          [=](restore_atom a, const std::string& p) { return fan_out<caf::ok_atom>(self, ranks, join_ok, a, p); },
          [=](state_atom a) { return fan_out<RoleStates>(self, ranks, join_states, a); }};
}

template <class Handle>
typename Handle::behavior_type frozen_group(typename Handle::pointer self, GroupPtr ranks) {
  watch_ranks(self, ranks);
  return {[=](score_atom a, const TicketList& t) { return fan_out<TicketList>(self, ranks, join_tickets, a, t); },
          [=](load_atom a, const std::string& p) { return fan_out<caf::ok_atom>(self, ranks, join_ok, a, p); },
          [=](state_atom a) { return fan_out<RoleStates>(self, ranks, join_states, a); }};
}

}  // namespace

Metrics average_metrics(const std::vector<Metrics>& per_rank) {
  std::map<std::string, std::pair<double, int>> sums;
  for (const auto& metrics : per_rank)
    for (const auto& [name, value] : metrics.values) {
      sums[name].first += value;
      sums[name].second += 1;
    }
  Metrics mean;
  for (const auto& [name, sum] : sums) mean.values[name] = sum.first / sum.second;
  return mean;
}

PolicyActor spawn_policy_group(caf::actor_system& system, std::vector<PolicyActor> ranks) {
  return system.spawn(policy_group, make_group(ranks));
}

CriticActor spawn_critic_group(caf::actor_system& system, std::vector<CriticActor> ranks) {
  return system.spawn(critic_group, make_group(ranks));
}

ReferenceActor spawn_reference_group(caf::actor_system& system, std::vector<ReferenceActor> ranks) {
  return system.spawn(frozen_group<ReferenceActor>, make_group(ranks));
}

RewardActor spawn_reward_group(caf::actor_system& system, std::vector<RewardActor> ranks) {
  return system.spawn(frozen_group<RewardActor>, make_group(ranks));
}

}  // namespace troupe::actors
