#pragma once
/// Where step 3's roles run: the placement manager plans the topology on this machine;
/// the process that holds the actor is the controller's own, and each other colocation
/// set of the plan becomes `devices` `troupe worker` processes, one per data-parallel
/// rank, each hosting every role of the set as that rank. An actor with several devices
/// is data-parallel, and so is every role colocated with it (DeepSpeed-Chat's layout:
/// all models on every device): rank 0 of each in the controller's process, ranks 1..
/// in worker processes. Tensor parallelism (tp > 1) is not run by step 3.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <troupe/placement/resources.hpp>
#include <troupe/placement/topology.hpp>

namespace troupe::actors {

/// Roles sharing worker processes, and how many ranks (processes) they span.
struct WorkerSet {
  std::vector<std::string> roles;  ///< "actor" (its ranks 1..), "critic", "reference", "reward"
  int ranks = 1;
  /// The set's processes are ranks first_rank.. of a group of first_rank + ranks; the
  /// ranks below live in the controller's process (the actor's rank 0).
  int first_rank = 0;
  /// The cluster node the plan puts each of the set's processes on, in rank order.
  std::vector<std::string> nodes;
};

struct Step3Placement {
  std::vector<WorkerSet> worker_sets;
  /// The critic's zero_stage in the topology: 1 partitions a data-parallel critic's
  /// optimizer state, 2 its gradients too, 3 its parameters too (engine/zero3.hpp).
  int critic_zero_stage = 0;
  /// The trained roles' reduce_bucket_size in the topology (their zero_stage 2).
  int64_t critic_reduce_bucket_size = 500'000'000, actor_reduce_bucket_size = 500'000'000;
  /// Each role's zero3_prefetch_layers in the topology (its zero_stage 3), by role name.
  std::map<std::string, int> zero3_prefetch_layers;
  /// The actor's data-parallel ranks (its devices): rank 0 here, the others in workers.
  int actor_ranks = 1;
  int actor_zero_stage = 0;
  /// The reward model's zero_stage: 3 partitions its layers over its ranks.
  int reward_zero_stage = 0;
  /// The reference's zero_stage: 3 partitions the layers of a frozen-copy reference over
  /// its ranks (a reference that is the actor's base lives in the actor's layout).
  int reference_zero_stage = 0;
  /// The actor's generation layout: groups of this many ranks generate tensor-parallel.
  int actor_inference_tp = 1;
  /// "actor: offload_optimizer" for each setting of offload_optimizer / offload_params.
  std::vector<std::string> offloads;
  /// The plan as `troupe plan` prints it.
  std::string plan_text;
  /// The cluster node the plan puts the actor's rank 0 on: the controller's process.
  std::string controller_node;
  /// The cluster has several nodes: workers are matched to the plan by the node they
  /// report (`troupe worker --node`), not by the order they join.
  bool spans_nodes = false;
  /// True when `role` (its rank 0) shares the controller's (the actor's) process.
  bool with_actor(const std::string& role) const;
  /// The data-parallel ranks of `role` (1 unless its devices say more).
  int ranks(const std::string& role) const;
  /// Worker processes to start: the sum of every set's ranks.
  int worker_processes() const;
};

/// The models each role loads, for the memory estimate.
struct Step3Models {
  std::filesystem::path actor, critic, reward;  ///< empty = none (e.g. a reward function)
};

/// Plans `topology` on `cluster` (this machine's resources, a description of it, or the
/// machines of a --listen run). Throws troupe::Error naming the topology file and the
/// field for what step 3 cannot run (tp > 1), or the plan's problems when it does not
/// fit (a strategy the nodes cannot satisfy included). Roles the topology leaves out run
/// with the actor.
Step3Placement place_step3_roles(const placement::Topology& topology, const Step3Models& models,
                                 const placement::ClusterResources& cluster);

}  // namespace troupe::actors
