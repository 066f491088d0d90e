/// place_step3_roles: the topology's processes on this machine.
#include <troupe/actors/step3_placement.hpp>

#include <algorithm>

#include <troupe/common/error.hpp>
#include <troupe/placement/placement_plan.hpp>
#include <troupe/placement/resources.hpp>

namespace troupe::actors {

bool Step3Placement::with_actor(const std::string& role) const {
  for (const auto& process : worker_processes)
    if (std::find(process.begin(), process.end(), role) != process.end()) return false;
  return true;
}

Step3Placement place_step3_roles(const placement::Topology& topology, const Step3Models& models) {
  auto planned = topology;
  for (auto& role : planned.roles) {
    if (role.devices != 1)
      throw Error(topology.source + ": roles." + placement::role_name(role.role) + ".devices = " +
                  std::to_string(role.devices) + ": step 3 runs every role with one rank (dp = tp = 1) for now");
    // Estimate the models this run loads, not the presets the file may name.
    const auto& dir = role.role == placement::Role::Critic ? models.critic
                      : role.role == placement::Role::Reward ? models.reward
                                                             : models.actor;
    if (!dir.empty()) role.model = dir.string();
  }
  const placement::ClusterResources cluster({placement::detect_local_node("local")});
  const auto plan = placement::make_plan(planned, cluster, models.actor.string());
  Step3Placement result;
  result.plan_text = placement::format_plan(plan);
  placement::require_feasible(plan);
  for (const auto& process : plan.processes) {
    if (std::find(process.roles.begin(), process.roles.end(), placement::Role::Actor) != process.roles.end()) continue;
    std::vector<std::string> roles;
    for (auto role : process.roles) roles.emplace_back(placement::role_name(role));
    result.worker_processes.push_back(roles);
  }
  return result;
}

}  // namespace troupe::actors
