/// place_step3_roles: the topology's processes on this machine or the cluster's nodes.
#include <troupe/actors/step3_placement.hpp>

#include <algorithm>

#include <troupe/common/error.hpp>
#include <troupe/placement/placement_plan.hpp>

namespace troupe::actors {

bool Step3Placement::with_actor(const std::string& role) const {
  for (const auto& set : worker_sets)
    if (std::find(set.roles.begin(), set.roles.end(), role) != set.roles.end()) return set.first_rank > 0;
  return true;
}

int Step3Placement::ranks(const std::string& role) const {
  if (role == "actor") return actor_ranks;
  for (const auto& set : worker_sets)
    if (std::find(set.roles.begin(), set.roles.end(), role) != set.roles.end()) return set.first_rank + set.ranks;
  return 1;
}

int Step3Placement::worker_processes() const {
  int count = 0;
  for (const auto& set : worker_sets) count += set.ranks;
  return count;
}

Step3Placement place_step3_roles(const placement::Topology& topology, const Step3Models& models,
                                 const placement::ClusterResources& cluster) {
  auto planned = topology;
  for (auto& role : planned.roles) {
    const std::string field = topology.source + ": roles." + placement::role_name(role.role);
    if (role.tp != 1)
      throw Error(field + ".tp = " + std::to_string(role.tp) + ": step 3 runs data-parallel ranks only (tp = 1)");
    // Estimate the models this run loads, not the presets the file may name.
    const auto& dir = role.role == placement::Role::Critic ? models.critic
                      : role.role == placement::Role::Reward ? models.reward
                                                             : models.actor;
    if (!dir.empty()) role.model = dir.string();
  }
  const auto plan = placement::make_plan(planned, cluster, models.actor.string());
  Step3Placement result;
  result.plan_text = placement::format_plan(plan);
  result.spans_nodes = cluster.nodes().size() > 1;
  // The nodes of ranks [first, ...) of a process, once it is placed.
  auto nodes_of = [](const placement::ProcessPlan& process, size_t first) {
    std::vector<std::string> nodes;
    for (size_t i = first; i < process.ranks.size(); ++i) nodes.push_back(process.ranks[i].node);
    return nodes;
  };
  if (const auto* critic = topology.find(placement::Role::Critic)) {
    result.critic_zero_stage = critic->zero_stage;
    result.critic_reduce_bucket_size = critic->reduce_bucket_size;
  }
  if (const auto* reward = topology.find(placement::Role::Reward)) result.reward_zero_stage = reward->zero_stage;
  if (const auto* reference = topology.find(placement::Role::Reference))
    result.reference_zero_stage = reference->zero_stage;
  if (const auto* actor = topology.find(placement::Role::Actor)) {
    result.actor_zero_stage = actor->zero_stage;
    result.actor_reduce_bucket_size = actor->reduce_bucket_size;
    result.actor_inference_tp = actor->inference_tp_size;
  }
  for (const auto& role : topology.roles) {
    const std::string name = placement::role_name(role.role);
    result.zero3_prefetch_layers[name] = role.zero3_prefetch_layers;
    if (role.offload_optimizer) result.offloads.push_back(name + ": offload_optimizer");
    if (role.offload_params) result.offloads.push_back(name + ": offload_params");
  }
  for (const auto& process : plan.processes) {
    const bool has_actor = std::find(process.roles.begin(), process.roles.end(), placement::Role::Actor) != process.roles.end();
    if (has_actor) {
      const int actor_devices = topology.find(placement::Role::Actor)->devices;
      result.actor_ranks = actor_devices;
      if (actor_devices > 1) {  // ranks 1.. of every role of the set, in workers
        WorkerSet ranks;
        for (auto role : process.roles) ranks.roles.emplace_back(placement::role_name(role));
        ranks.ranks = actor_devices - 1;
        ranks.first_rank = 1;
        ranks.nodes = nodes_of(process, 1);
        result.worker_sets.push_back(ranks);
      }
      if (!process.ranks.empty()) result.controller_node = process.ranks.front().node;
      continue;
    }
    WorkerSet set;
    set.ranks = topology.find(process.roles.front())->devices;
    for (auto role : process.roles) set.roles.emplace_back(placement::role_name(role));
    set.nodes = nodes_of(process, 0);
    result.worker_sets.push_back(set);
  }
  placement::require_feasible(plan);
  return result;
}

}  // namespace troupe::actors
