/// `troupe plan`: where each role runs and how much memory it needs, before a run.
#include <iostream>
#include <memory>

#include <troupe/common/error.hpp>
#include <troupe/placement/placement_plan.hpp>
#include <troupe/placement/resources.hpp>
#include <troupe/placement/topology.hpp>

#include "commands.hpp"

namespace troupe::apps {
namespace {

struct PlanArgs {
  std::string topology;
  std::string model;
  std::string cluster;
  bool json = false;
  bool async_rollout = false;
};

/// What troupe train --step 3 --async_rollout refuses, refused here too: the copy
/// follows one actor rank, in the process of every role.
void check_async_rollout(const placement::Topology& topology) {
  const auto refuse = [&](const std::string& why) { throw Error("--async_rollout: " + why + " (" + topology.source + ")"); };
  const auto* actor = topology.find(placement::Role::Actor);
  if (actor && actor->devices > 1)
    refuse("the actor has " + std::to_string(actor->devices) + " ranks; the rollout copy follows one actor rank");
  if (actor && actor->inference_tp_size > 1) refuse("inference_tp_size > 1 (tensor-parallel generation) is not supported");
  if (topology.colocate.size() > 1)
    refuse("the rollout copy takes the actor's weights in its process; every role must be in one process (" +
           std::to_string(topology.colocate.size()) + " here)");
}

void run_plan(const PlanArgs& args) {
  auto topology = args.topology.empty() ? placement::default_topology() : placement::load_topology(args.topology);
  if (args.async_rollout) {
    check_async_rollout(topology);
    topology.async_rollout = true;
  }
  const auto cluster = args.cluster.empty() ? placement::ClusterResources({placement::detect_local_node("local")})
                                            : placement::ClusterResources::load(args.cluster);
  const auto plan = placement::make_plan(topology, cluster, args.model);
  if (args.json) std::cout << placement::to_json(plan).dump(2) << "\n";
  else std::cout << placement::format_plan(plan);
  placement::require_feasible(plan);  // exit 1 with the reason when it does not fit
}

}  // namespace

Command add_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  auto* cmd = app.add_subcommand("plan", "Place roles on devices and estimate their memory from a topology file");
  cmd->add_option("--topology", args->topology,
                  "Topology JSON (roles, dp/tp, ZeRO, colocation; see placement/examples). Default: all four roles "
                  "colocated on one device")
      ->check(CLI::ExistingFile);
  cmd->add_option("--model", args->model, "Model preset (opt-1.3b, llama-7b, ...) or Hugging Face directory for roles without one");
  cmd->add_option("--cluster", args->cluster, "Cluster JSON (nodes, CPU threads, memory, GPUs). Default: this machine")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--async_rollout", args->async_rollout,
                "Count step 3's rollout copy of the actor (troupe train --async_rollout): its weights and its "
                "generation beside training");
  cmd->add_flag("--json", args->json, "Print the plan as JSON");
  return {cmd, [args] { run_plan(*args); }};
}

}  // namespace troupe::apps
