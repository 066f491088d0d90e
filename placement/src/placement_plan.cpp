#include <troupe/placement/placement_plan.hpp>

#include <algorithm>
#include <map>

#include <troupe/common/error.hpp>
#include "bytes.hpp"

namespace troupe::placement {
namespace {

/// The model name each role uses (see make_plan's rules).
std::string model_for(const Topology& topology, const RoleSpec& spec, const std::string& default_model) {
  auto own = [&](Role role) -> std::string {
    const auto* r = topology.find(role);
    return r ? r->model : std::string();
  };
  std::string name = spec.model;
  if (name.empty() && spec.role == Role::Reference) name = own(Role::Actor);
  if (name.empty() && spec.role == Role::Reward) name = own(Role::Critic);
  if (name.empty() && spec.role == Role::Critic) name = own(Role::Reward);
  if (name.empty()) name = default_model;
  if (name.empty())
    throw Error(topology.source + ": roles." + role_name(spec.role) +
                ".model: no model given (set it in the topology or pass --model)");
  return name;
}

const RolePlan* member(const std::vector<RolePlan>& roles, const ProcessPlan& process, Role role) {
  if (std::find(process.roles.begin(), process.roles.end(), role) == process.roles.end()) return nullptr;
  for (const auto& r : roles)
    if (r.spec.role == role) return &r;
  return nullptr;
}

/// Resident state plus each phase this set takes part in, per rank. With the async
/// rollout copy (step 3's --async_rollout) the actor's process also holds the copy's
/// weights (resident) and its generation, which runs beside whatever else runs.
void estimate_process(ProcessPlan& process, const std::vector<RolePlan>& roles, bool async_rollout) {
  int64_t score = 0;
  for (const auto role : process.roles) {
    const auto* r = member(roles, process, role);
    process.resident += r->memory.resident();
    process.host += r->memory.host;
    score += r->memory.scoring();
  }
  const auto* actor = member(roles, process, Role::Actor);
  int64_t beside = 0;  // the copy's generation, during every phase
  if (actor && async_rollout) {
    process.rollout_copy = actor->memory.weights + actor->memory.generation();
    process.resident += actor->memory.weights;
    beside = actor->memory.generation();
  }
  if (actor) process.phases.push_back({"generate", actor->memory.generation()});
  process.phases.push_back({"score", score + beside});
  if (actor) process.phases.push_back({"train_actor", actor->memory.training() + beside});
  if (const auto* critic = member(roles, process, Role::Critic))
    process.phases.push_back({"train_critic", critic->memory.training() + beside});
  const auto top = std::max_element(process.phases.begin(), process.phases.end(),
                                    [](const PhaseBytes& a, const PhaseBytes& b) { return a.bytes < b.bytes; });
  process.peak_phase = top->phase;
  process.peak = process.resident + top->bytes;
}

std::string breakdown(const ProcessPlan& process) {
  for (const auto& phase : process.phases)
    if (phase.phase == process.peak_phase)
      return "peak in " + phase.phase + ": resident " + format_bytes(process.resident) + " + " + format_bytes(phase.bytes);
  return "";
}

}  // namespace

Plan make_plan(const Topology& topology, const ClusterResources& cluster, const std::string& default_model,
               const ModelResolver& resolve) {
  if (cluster.empty()) throw Error("cluster: no nodes to place roles on");
  Plan plan;
  plan.topology = topology;
  plan.gpus = cluster.has_gpus();

  std::map<std::string, ModelShape> shapes;  // resolve each model once
  for (const auto& spec : topology.roles) {
    const auto name = model_for(topology, spec, default_model);
    if (!shapes.count(name)) shapes.emplace(name, resolve(name));
    const auto& shape = shapes.at(name);
    RolePlan role{spec, shape, estimate_memory(spec, shape, topology.precision, topology.batch, topology.inference_precision,
                                               topology.packed_inference_weights), 0};
    if (role.spec.tp > shape.heads || shape.heads % role.spec.tp != 0)
      throw Error(topology.source + ": roles." + role_name(spec.role) + ".tp: " + std::to_string(spec.tp) +
                  " does not divide the " + std::to_string(shape.heads) + " attention heads of " + name);
    plan.roles.push_back(role);
  }

  ResourcePool pool(cluster);
  std::map<std::string, int> next_cpu_slot;
  for (const auto& set : topology.colocate) {
    ProcessPlan process;
    process.name = Topology::set_name(set);
    process.roles = set;
    for (auto& r : plan.roles)
      if (std::find(set.begin(), set.end(), r.spec.role) != set.end()) r.process = plan.processes.size();
    estimate_process(process, plan.roles, topology.async_rollout);

    const int devices = topology.find(set.front())->devices;
    Bundle bundle;
    bundle.cpu_threads = topology.cpu_threads_per_device;
    if (plan.gpus) {
      bundle.gpus = 1;
      bundle.memory_bytes = process.host;
    } else {
      bundle.memory_bytes = process.peak + process.host;  // a CPU slot's memory is the host's
    }
    const PlacementGroupSpec spec{process.name, topology.strategy, std::vector<Bundle>(static_cast<size_t>(devices), bundle)};
    try {
      process.group = pool.reserve(spec);
      process.placed = true;
    } catch (const Error& e) {
      plan.problems.push_back(process.name + " (" + std::to_string(devices) + (plan.gpus ? " GPU" : " CPU slot") +
                              (devices == 1 ? "" : "s") + ", each " + describe(bundle) + ", " + breakdown(process) +
                              ") cannot be placed: " + e.what());
    }
    if (process.placed) {
      for (size_t b = 0; b < process.group.placements.size(); ++b) {
        const auto& where = process.group.placements[b];
        const auto& node = cluster.node(where.node);
        RankSlot slot{static_cast<int>(b), where.node, "", 0};
        if (plan.gpus) {
          const auto& gpu = node.gpus.at(static_cast<size_t>(where.gpu_indices.at(0)));
          slot.device = "cuda:" + std::to_string(gpu.index);
          slot.capacity = gpu.memory_free;
        } else {
          slot.device = "cpu:" + std::to_string(next_cpu_slot[where.node]++);
          slot.capacity = node.memory_available;
        }
        process.ranks.push_back(slot);
      }
      if (plan.gpus) {
        // GPU memory is per device, which Ray-style bundles do not count: check each rank.
        std::vector<std::string> short_ranks;
        for (const auto& slot : process.ranks)
          if (process.peak > slot.capacity)
            short_ranks.push_back(process.name + " on " + slot.node + "/" + slot.device + " needs " + format_bytes(process.peak) +
                                  ", has " + format_bytes(slot.capacity) + " free (short " +
                                  format_bytes(process.peak - slot.capacity) + "; " + breakdown(process) + ")");
        if (!short_ranks.empty()) {
          auto line = short_ranks.front();
          if (short_ranks.size() > 1) line += " (and " + std::to_string(short_ranks.size() - 1) + " more ranks)";
          plan.problems.push_back(line);
        }
      }
    }
    plan.processes.push_back(std::move(process));
  }
  return plan;
}

void require_feasible(const Plan& plan) {
  if (plan.feasible()) return;
  std::string message = plan.topology.source + ": the plan does not fit: ";
  for (size_t i = 0; i < plan.problems.size(); ++i) message += (i ? "; " : "") + plan.problems[i];
  throw Error(message);
}

}  // namespace troupe::placement
