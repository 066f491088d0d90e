#include <catch2/catch.hpp>

#include <troupe/common/error.hpp>
#include "bytes.hpp"
#include <troupe/placement/placement_plan.hpp>

using namespace troupe::placement;
using nlohmann::json;

namespace {

ClusterResources gpu_cluster(int nodes, int gpus, int64_t gpu_memory) {
  ClusterResources cluster;
  for (int n = 0; n < nodes; ++n) {
    NodeResources node{"node" + std::to_string(n), 32, 256 * kGiB, 256 * kGiB, {}};
    for (int g = 0; g < gpus; ++g) node.gpus.push_back({g, gpu_memory, gpu_memory});
    cluster.add_node(node);
  }
  return cluster;
}

Topology topology(const std::string& text) { return parse_topology(json::parse(text), "topology.json"); }

const RolePlan& role_plan(const Plan& plan, Role role) {
  for (const auto& r : plan.roles)
    if (r.spec.role == role) return r;
  throw troupe::Error("no such role in plan");
}

}  // namespace

TEST_CASE("all four colocated: one process, shared devices, peak = residents + largest phase", "[placement][plan]") {
  const auto plan = make_plan(default_topology(), gpu_cluster(1, 1, 80 * kGiB), "opt-125m");
  REQUIRE(plan.processes.size() == 1);
  const auto& p = plan.processes[0];
  CHECK(p.name == "actor+critic+reference+reward");
  REQUIRE(p.ranks.size() == 1);
  CHECK(p.ranks[0].node == "node0");
  CHECK(p.ranks[0].device == "cuda:0");
  const auto& actor = role_plan(plan, Role::Actor).memory;
  const auto& critic = role_plan(plan, Role::Critic).memory;
  const auto& reference = role_plan(plan, Role::Reference).memory;
  const auto& reward = role_plan(plan, Role::Reward).memory;
  CHECK(p.resident == actor.resident() + critic.resident() + reference.resident() + reward.resident());
  // Every resident part is held while others run; phases are released in between.
  const int64_t score = actor.scoring() + critic.scoring() + reference.scoring() + reward.scoring();
  const int64_t largest = std::max({actor.generation(), score, actor.training(), critic.training()});
  CHECK(p.peak == p.resident + largest);
  // Unpartitioned fp16 Adam on a 125M actor and critic: 16 bytes per parameter each.
  CHECK(actor.resident() + actor.gradients == 16 * 125'239'296LL);
  CHECK(p.peak < p.resident + actor.generation() + score + actor.training() + critic.training());
  CHECK(plan.feasible());
  CHECK_NOTHROW(require_feasible(plan));
  // Reference and reward default to the actor's and critic's models.
  CHECK(role_plan(plan, Role::Reference).model.name == "opt-125m");
}

TEST_CASE("the async rollout copy adds the actor's weights and its generation beside every phase", "[placement][plan]") {
  auto t = default_topology();
  const auto sync = make_plan(t, gpu_cluster(1, 1, 80 * kGiB), "opt-125m");
  t.async_rollout = true;
  const auto async = make_plan(t, gpu_cluster(1, 1, 80 * kGiB), "opt-125m");
  const auto& actor = role_plan(async, Role::Actor).memory;
  const auto& before = sync.processes.at(0);
  const auto& after = async.processes.at(0);
  CHECK(before.rollout_copy == 0);
  CHECK(after.rollout_copy == actor.weights + actor.generation());
  CHECK(after.resident == before.resident + actor.weights);
  auto phase = [](const ProcessPlan& p, const std::string& name) {
    for (const auto& ph : p.phases)
      if (ph.phase == name) return ph.bytes;
    throw troupe::Error("no phase " + name);
  };
  CHECK(phase(after, "generate") == phase(before, "generate"));  // before cycle 1, alone
  for (const std::string name : {"score", "train_actor", "train_critic"})
    CHECK(phase(after, name) == phase(before, name) + actor.generation());
  CHECK(after.peak == before.peak + actor.weights + actor.generation());  // training is the largest phase
  CHECK(to_json(async)["processes"][0]["rollout_copy"] == after.rollout_copy);
}

TEST_CASE("actor+reference and critic+reward take their own devices", "[placement][plan]") {
  const auto t = topology(R"({"roles": {
      "actor": {"model": "opt-1.3b", "devices": 4, "zero_stage": 3},
      "reference": {"devices": 4, "zero_stage": 3},
      "critic": {"model": "opt-350m", "devices": 4, "zero_stage": 3},
      "reward": {"devices": 4}},
    "colocate": [["actor", "reference"], ["critic", "reward"]]})");
  const auto plan = make_plan(t, gpu_cluster(1, 8, 80 * kGiB));
  REQUIRE(plan.processes.size() == 2);
  CHECK(plan.processes[0].name == "actor+reference");
  CHECK(plan.processes[1].name == "critic+reward");
  std::vector<std::string> devices;
  for (const auto& p : plan.processes)
    for (const auto& r : p.ranks) devices.push_back(r.device);
  CHECK(devices == std::vector<std::string>{"cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:4", "cuda:5", "cuda:6", "cuda:7"});
  CHECK(role_plan(plan, Role::Reference).model.name == "opt-1.3b");
  CHECK(role_plan(plan, Role::Reward).model.name == "opt-350m");
  CHECK(role_plan(plan, Role::Actor).process == 0);
  CHECK(role_plan(plan, Role::Reward).process == 1);
  // A critic+reward set never generates and only the critic trains.
  std::vector<std::string> phases;
  for (const auto& ph : plan.processes[1].phases) phases.push_back(ph.phase);
  CHECK(phases == std::vector<std::string>{"score", "train_critic"});
  CHECK(plan.feasible());
  const auto j = to_json(plan);
  CHECK(j.at("processes").at(1).at("ranks").at(0).at("device") == "cuda:4");
  CHECK(j.at("feasible") == true);
  const auto table = format_plan(plan);
  CHECK_THAT(table, Catch::Contains("node0/cuda:0-3") && Catch::Contains("node0/cuda:4-7") && Catch::Contains("the plan fits"));
}

TEST_CASE("every role separate: four processes, spread over nodes by strategy", "[placement][plan]") {
  auto t = topology(R"({"strategy": "SPREAD", "roles": {
      "actor": {"devices": 2}, "critic": {"devices": 2}, "reference": {}, "reward": {}},
    "colocate": []})");
  const auto plan = make_plan(t, gpu_cluster(2, 4, 80 * kGiB), "opt-125m");
  REQUIRE(plan.processes.size() == 4);
  // SPREAD puts a 2-rank process on two nodes.
  CHECK(plan.processes[0].ranks[0].node != plan.processes[0].ranks[1].node);
  int used = 0;
  for (const auto& p : plan.processes) used += static_cast<int>(p.ranks.size());
  CHECK(used == 6);
  // Alone, each process peaks at its own role's peak.
  for (const auto& r : plan.roles) CHECK(plan.processes[r.process].peak == r.memory.peak());

  t.strategy = Strategy::StrictPack;
  const auto packed = make_plan(t, gpu_cluster(2, 4, 80 * kGiB), "opt-125m");
  CHECK(packed.processes[0].ranks[0].node == packed.processes[0].ranks[1].node);
  // Too few GPUs: the last process cannot be placed, and the plan says why.
  const auto short_gpus = make_plan(t, gpu_cluster(1, 4, 80 * kGiB), "opt-125m");
  REQUIRE(short_gpus.problems.size() == 2);
  CHECK_THAT(short_gpus.problems[0], Catch::StartsWith("reference (1 GPU, each {cpu 1, gpu 1}") &&
                                         Catch::Contains("node0 short 1 gpu (0 free)"));
  CHECK_THROWS_WITH(require_feasible(short_gpus), Catch::StartsWith("topology.json: the plan does not fit: reference"));
}

TEST_CASE("an infeasible plan names the role, the device and the shortfall", "[placement][plan]") {
  const auto t = topology(R"({"roles": {
      "actor": {"model": "opt-1.3b", "devices": 1},
      "critic": {"model": "opt-1.3b", "devices": 1}},
    "colocate": []})");
  auto cluster = gpu_cluster(1, 2, 16 * kGiB);
  const auto plan = make_plan(t, cluster);
  const auto& critic = role_plan(plan, Role::Critic).memory;
  const auto& actor = role_plan(plan, Role::Actor).memory;
  REQUIRE(plan.problems.size() == 2);
  // 16 bytes per parameter of an unpartitioned 1.3B model are already 19.6 GiB.
  CHECK(critic.peak() > 16 * kGiB);
  const auto expected = "critic on node0/cuda:1 needs " + format_bytes(critic.peak()) + ", has 16.0 GiB free (short " +
                        format_bytes(critic.peak() - 16 * kGiB) + "; peak in train_critic: resident " +
                        format_bytes(critic.resident()) + " + " + format_bytes(critic.training()) + ")";
  CHECK(plan.problems[1] == expected);
  CHECK_THAT(plan.problems[0], Catch::StartsWith("actor on node0/cuda:0 needs " + format_bytes(actor.peak())));
  CHECK_THAT(format_plan(plan), Catch::Contains("does NOT fit") && Catch::Contains(expected));
  // ZeRO-3 over 8 GPUs brings it under 16 GiB, generating from bf16 copies (fp32 ones
  // and an fp32 KV cache need 17.2 GiB).
  const auto sharded = topology(R"({"inference_precision": "bf16", "roles": {
      "actor": {"model": "opt-1.3b", "devices": 8, "zero_stage": 3, "gradient_checkpointing": true},
      "critic": {"model": "opt-1.3b", "devices": 8, "zero_stage": 3, "gradient_checkpointing": true}},
    "colocate": [["actor", "critic"]]})");
  CHECK(make_plan(sharded, gpu_cluster(1, 8, 16 * kGiB)).feasible());
}

TEST_CASE("without GPUs, devices are CPU slots and memory is the host's", "[placement][plan]") {
  const auto t = topology(R"({"precision": "fp32", "roles": {
      "actor": {"devices": 2}, "critic": {"devices": 2}, "reference": {"devices": 2}, "reward": {"devices": 2}},
    "colocate": [["actor", "reference"], ["critic", "reward"]]})");
  ClusterResources big({NodeResources{"host", 8, 64 * kGiB, 64 * kGiB, {}}});
  const auto plan = make_plan(t, big, "opt-125m");
  REQUIRE(plan.feasible());
  CHECK_FALSE(plan.gpus);
  std::vector<std::string> slots;
  for (const auto& p : plan.processes)
    for (const auto& r : p.ranks) slots.push_back(r.node + "/" + r.device);
  CHECK(slots == std::vector<std::string>{"host/cpu:0", "host/cpu:1", "host/cpu:2", "host/cpu:3"});
  CHECK(plan.processes[0].ranks[0].capacity == 64 * kGiB);

  // Too few threads, then too little memory: named in the reservation's words.
  const auto few = make_plan(t, ClusterResources({NodeResources{"host", 3, 64 * kGiB, 64 * kGiB, {}}}), "opt-125m");
  REQUIRE(few.problems.size() == 1);
  CHECK_THAT(few.problems[0], Catch::StartsWith("critic+reward (2 CPU slots") && Catch::Contains("bundle 1 {cpu 1, memory") &&
                                   Catch::Contains("host short 1 cpu (0 free)"));
  const int64_t need = plan.processes[0].peak;
  const auto small = make_plan(t, ClusterResources({NodeResources{"host", 8, 64 * kGiB, need + need / 2, {}}}), "opt-125m");
  REQUIRE_FALSE(small.feasible());
  CHECK_THAT(small.problems[0], Catch::StartsWith("actor+reference (2 CPU slots, each {cpu 1, memory " + format_bytes(need)) &&
                                    Catch::Contains("host short " + format_bytes(need / 2 + need % 2) + " memory"));
}

TEST_CASE("planning errors: missing model, TP that does not split the heads", "[placement][plan]") {
  CHECK_THROWS_WITH(make_plan(default_topology(), gpu_cluster(1, 1, 80 * kGiB)),
                    "default topology: roles.actor.model: no model given (set it in the topology or pass --model)");
  // OPT-350m has 16 heads: tp 24 cannot split them (96 devices keep dp * tp valid).
  const auto t = topology(R"({"roles": {"actor": {"model": "opt-350m", "devices": 96, "tp": 24}}})");
  CHECK_THROWS_WITH(make_plan(t, gpu_cluster(1, 1, 80 * kGiB)),
                    "topology.json: roles.actor.tp: 24 does not divide the 16 attention heads of opt-350m");
}
