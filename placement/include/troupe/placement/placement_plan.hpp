#pragma once
/// The placement manager: a topology and a cluster's resources become a plan saying
/// which role runs on which node and devices, which roles share a process, and how
/// each process's memory estimate compares with what its devices have free.
///
/// How a colocated set's peak is estimated: roles sharing a process share its devices,
/// and the hybrid engine releases what an idle role holds beyond its resident state
/// (KV cache and gathered inference weights after generation, activations and
/// gradients after each phase). So per rank
///   peak = sum of every member's resident state (weights + optimizer)
///        + max over the step-3 phases of what that phase adds:
///          generate      the actor's inference weights, KV cache and prefill
///          score         the scoring activations of every member (the four scorers
///                        run concurrently)
///          train_actor   the actor's gradients and training activations
///          train_critic  the critic's gradients and training activations
/// A role alone in its process is the same sum over one member. Processes placed on
/// the same node but on different devices do not share memory; on a machine without
/// GPUs, devices are CPU slots and every rank's peak comes out of the node's host
/// memory, so the reservation itself checks it.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/placement/memory_estimate.hpp>
#include <troupe/placement/model_shape.hpp>
#include <troupe/placement/placement_group.hpp>
#include <troupe/placement/resources.hpp>
#include <troupe/placement/topology.hpp>

namespace troupe::placement {

struct RolePlan {
  RoleSpec spec;
  ModelShape model;
  MemoryEstimate memory;
  size_t process = 0;  ///< index into Plan::processes
};

/// One rank of a process: a GPU, or a CPU slot on a machine without GPUs.
struct RankSlot {
  int rank = 0;
  std::string node;
  std::string device;     ///< "cuda:1" or "cpu:3"
  int64_t capacity = 0;   ///< free memory of that device (host memory of the node for CPU slots)
};

struct PhaseBytes {
  std::string phase;  ///< generate, score, train_actor, train_critic
  int64_t bytes = 0;  ///< added on top of the resident state, per rank
};

/// One process: a colocation set, its placement group and its memory per rank.
struct ProcessPlan {
  std::string name;  ///< "actor+reference"
  std::vector<Role> roles;
  bool placed = false;
  PlacementGroup group;
  std::vector<RankSlot> ranks;
  int64_t resident = 0;  ///< per rank
  std::vector<PhaseBytes> phases;
  std::string peak_phase;
  int64_t peak = 0;       ///< per rank, on its device
  int64_t host = 0;       ///< per rank, offloaded state in host memory
  int64_t rollout_copy = 0;  ///< per rank, the async rollout copy (weights + generation), counted above
};

struct Plan {
  Topology topology;
  bool gpus = false;  ///< devices are GPUs (else CPU slots)
  std::vector<ProcessPlan> processes;
  std::vector<RolePlan> roles;
  /// Why the plan cannot run, one line each, naming the role, the place and the
  /// shortfall; empty when it fits.
  std::vector<std::string> problems;
  bool feasible() const { return problems.empty(); }
};

/// Resolves a role's model name to its shape (presets and HF directories by default).
using ModelResolver = std::function<ModelShape(const std::string&)>;

/// Builds the plan. Models: a role's own `model`, else reference takes the actor's,
/// reward the critic's (and critic the reward's), else `default_model`. Throws
/// troupe::Error when a role has no model; capacity problems go to Plan::problems.
Plan make_plan(const Topology& topology, const ClusterResources& cluster, const std::string& default_model = "",
               const ModelResolver& resolve = resolve_model_shape);

/// Throws troupe::Error with every problem when the plan does not fit.
void require_feasible(const Plan& plan);

/// The plan as a readable table: processes with devices and peak vs capacity, then
/// each role's estimate.
std::string format_plan(const Plan& plan);
nlohmann::json to_json(const Plan& plan);

}  // namespace troupe::placement
