#pragma once
/// Where step 3's roles run: the placement manager plans the topology on this machine;
/// the process that holds the actor is the controller's own, every other process of
/// the plan becomes a `troupe worker` hosting its roles. Each role has one rank here
/// (dp = tp = 1): data- and tensor-parallel roles are not run by step 3 yet.
#include <filesystem>
#include <string>
#include <vector>

#include <troupe/placement/topology.hpp>

namespace troupe::actors {

struct Step3Placement {
  /// Roles ("critic", "reference", "reward") of each worker process, in plan order.
  std::vector<std::vector<std::string>> worker_processes;
  /// The plan as `troupe plan` prints it.
  std::string plan_text;
  /// True when `role` shares the controller's (the actor's) process.
  bool with_actor(const std::string& role) const;
};

/// The models each role loads, for the memory estimate.
struct Step3Models {
  std::filesystem::path actor, critic, reward;  ///< empty = none (e.g. a reward function)
};

/// Plans `topology` on this machine. Throws troupe::Error naming the topology file and
/// the role for a role with more than one device, or the plan's problems when it does
/// not fit. Roles the topology leaves out run with the actor.
Step3Placement place_step3_roles(const placement::Topology& topology, const Step3Models& models);

}  // namespace troupe::actors
