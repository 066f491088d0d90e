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
};

void run_plan(const PlanArgs& args) {
  const auto topology = args.topology.empty() ? placement::default_topology() : placement::load_topology(args.topology);
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
  cmd->add_flag("--json", args->json, "Print the plan as JSON");
  return {cmd, [args] { run_plan(*args); }};
}

}  // namespace troupe::apps
