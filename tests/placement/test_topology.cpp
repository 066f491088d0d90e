#include <catch2/catch.hpp>

#include <filesystem>

#include <troupe/common/error.hpp>
#include <troupe/placement/topology.hpp>

using namespace troupe::placement;
using nlohmann::json;

namespace {

Topology parse(const std::string& text) { return parse_topology(json::parse(text), "topology.json"); }

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const troupe::Error& e) {
    return e.what();
  }
  return "(no error)";
}

const std::filesystem::path kExamples = TROUPE_PLACEMENT_EXAMPLES_DIR;

}  // namespace

TEST_CASE("topology defaults: all four roles in one process", "[placement][topology]") {
  const auto t = default_topology();
  REQUIRE(t.roles.size() == 4);
  REQUIRE(t.colocate.size() == 1);
  CHECK(Topology::set_name(t.colocate[0]) == "actor+critic+reference+reward");
  CHECK(t.precision == Precision::Fp16);
  CHECK(t.inference_precision == Precision::Fp32);  // troupe's --inference_dtype default
  CHECK(t.strategy == Strategy::Pack);
  CHECK(t.batch.sequence_len() == 512);
  for (const auto& r : t.roles) {
    CHECK(r.devices == 1);
    CHECK(r.dp == 1);
    CHECK(r.tp == 1);
  }
}

TEST_CASE("topology: dp follows devices / tp; colocation sets and singletons", "[placement][topology]") {
  const auto t = parse(R"({"roles": {"actor": {"devices": 8, "tp": 2, "zero_stage": 3},
                                     "reference": {"devices": 8}, "critic": {"devices": 4}, "reward": {"devices": 2}},
                           "colocate": [["actor", "reference"]]})");
  CHECK(t.find(Role::Actor)->dp == 4);
  CHECK(t.find(Role::Reference)->dp == 8);
  REQUIRE(t.colocate.size() == 3);
  CHECK(Topology::set_name(t.colocate[0]) == "actor+reference");
  CHECK(Topology::set_name(t.colocate[1]) == "critic");
  CHECK(Topology::set_name(t.colocate[2]) == "reward");
  const auto separate = parse(R"({"roles": {"actor": {}, "critic": {}}, "colocate": []})");
  CHECK(separate.colocate.size() == 2);
  // Round trip through JSON keeps the meaning.
  const auto again = parse_topology(to_json(t), "again");
  CHECK(again.colocate.size() == 3);
  CHECK(again.find(Role::Actor)->tp == 2);
  CHECK(again.find(Role::Actor)->inference_tp_size == 1);
  const auto generation_tp = parse(R"({"roles": {"actor": {"devices": 4, "inference_tp_size": 2}}})");
  CHECK(parse_topology(to_json(generation_tp), "again").find(Role::Actor)->inference_tp_size == 2);
  CHECK(t.find(Role::Actor)->zero3_prefetch_layers == 1);  // DeepSpeed prefetches by default
  const auto prefetch = parse(R"({"roles": {"actor": {"zero_stage": 3, "zero3_prefetch_layers": 0}}})");
  CHECK(parse_topology(to_json(prefetch), "again").find(Role::Actor)->zero3_prefetch_layers == 0);
  const auto buckets = parse(R"({"roles": {"actor": {"zero_stage": 2, "reduce_bucket_size": 4096}}})");
  CHECK(parse_topology(to_json(buckets), "again").find(Role::Actor)->reduce_bucket_size == 4096);
}

TEST_CASE("topology validation names the file and the field", "[placement][topology]") {
  CHECK(error_of(R"({"roles": {"actor": {}, "critic": {"devices": 4, "tp": 3}}})") ==
        "topology.json: roles.critic.tp: 3 does not divide device count 4");
  CHECK(error_of(R"({"roles": {"actor": {"devices": 4, "tp": 2, "dp": 3}}})") ==
        "topology.json: roles.actor.dp: 3 * tp 2 != device count 4");
  CHECK(error_of(R"({"roles": {"actor": {"devices": 4, "inference_tp_size": 3}}})") ==
        "topology.json: roles.actor.inference_tp_size: 3 does not divide device count 4");
  CHECK(error_of(R"({"roles": {"actor": {}, "critic": {"devices": 2, "inference_tp_size": 2}}})") ==
        "topology.json: roles.critic.inference_tp_size: critic does not generate; the generation layout is the actor's");
  CHECK(error_of(R"({"roles": {"actor": {"zero_stage": 4}}})") ==
        "topology.json: roles.actor.zero_stage: 4 is out of range [0, 3]");
  CHECK(error_of(R"({"roles": {"actor": {"zero_stage": 3, "zero3_prefetch_layers": -1}}})") ==
        "topology.json: roles.actor.zero3_prefetch_layers: -1 is out of range [0, 1048576]");
  CHECK(error_of(R"({"roles": {"actor": {"zero3_prefetch_layers": 2}}})") ==
        "topology.json: roles.actor.zero3_prefetch_layers: applies to zero_stage 3, and this role has zero_stage 0");
  CHECK(error_of(R"({"roles": {"actor": {"zero_stage": 3, "reduce_bucket_size": 4096}}})") ==
        "topology.json: roles.actor.reduce_bucket_size: applies to zero_stage 2, and this role has zero_stage 3");
  CHECK(error_of(R"({"roles": {"actor": {"zero_stage": 2, "offload_params": true}}})") ==
        "topology.json: roles.actor.offload_params: needs zero_stage 3 (has 2)");
  CHECK(error_of(R"({"roles": {"actor": {"offload_optimizer": true}}})") ==
        "topology.json: roles.actor.offload_optimizer: needs zero_stage 1, 2 or 3 (has 0)");
  CHECK_THAT(error_of(R"({"roles": {"actor": {}, "reward": {"lora_dim": 8}}})"),
             Catch::StartsWith("topology.json: roles.reward.lora_dim: reward does not train"));
  CHECK_THAT(error_of(R"({"roles": {"actor": {"device": 2}}})"),
             Catch::StartsWith("topology.json: roles.actor.device: unknown field"));
  CHECK_THAT(error_of(R"({"roles": {"actor": {}, "critc": {}}})"),
             Catch::StartsWith("topology.json: roles.critc: unknown role"));
  CHECK(error_of(R"({"roles": {"critic": {}}})") == "topology.json: roles.actor: missing (every run has an actor)");
  CHECK(error_of(R"({"roles": {"actor": {"devices": 0}}})") ==
        "topology.json: roles.actor.devices: 0 is out of range [1, 1048576]");
  CHECK(error_of(R"({"roles": {"actor": {"devices": "2"}}})") == "topology.json: roles.actor.devices: \"2\" is not an integer");
  CHECK(error_of(R"({"roles": {"actor": {}}, "precision": "fp8"})") == "topology.json: precision: \"fp8\" is not fp16, bf16 or fp32");
  CHECK(error_of(R"({"roles": {"actor": {}}, "inference_precision": "fp16"})") ==
        "topology.json: inference_precision: \"fp16\" is not fp32 or bf16");
  CHECK(error_of(R"({"roles": {"actor": {}}, "inference_weights": "fused"})") ==
        "topology.json: inference_weights: \"fused\" is not packed or training");
  CHECK_THAT(error_of(R"({"roles": {"actor": {}}, "inference_weights": "training", "inference_precision": "bf16"})"),
             Catch::StartsWith("topology.json: inference_weights: \"training\" computes with the fp32 training weights"));
  CHECK_THAT(error_of(R"({"roles": {"actor": {}}, "strategy": "TIGHT"})"),
             Catch::StartsWith("topology.json: strategy: unknown strategy \"TIGHT\""));
  CHECK(error_of(R"({"roles": {"actor": {}, "critic": {}}, "colocate": [["actor", "critic"], ["critic"]]})") ==
        "topology.json: colocate[1]: critic is already in another colocation set");
  CHECK(error_of(R"({"roles": {"actor": {}}, "colocate": [["actor", "reward"]]})") ==
        "topology.json: colocate[0]: reward is not among roles");
  CHECK(error_of(R"({"roles": {"actor": {"devices": 4}, "reference": {"devices": 2}}, "colocate": [["actor", "reference"]]})") ==
        "topology.json: colocate[0]: actor has 4 devices, reference has 2; colocated roles share their devices and need the same count");
  CHECK(error_of(R"({"roles": {"actor": {}}, "batch": {"prompt_len": 0}})") ==
        "topology.json: batch.prompt_len: 0 is out of range [1, 16777216]");
}

TEST_CASE("the example topologies parse", "[placement][topology]") {
  for (const auto* name : {"all_colocated.json", "actor_ref_critic_reward.json", "all_separate.json", "lora_cpu.json"}) {
    INFO(name);
    const auto t = load_topology(kExamples / name);
    CHECK(t.source == name);
    CHECK(t.find(Role::Actor) != nullptr);
  }
  CHECK(load_topology(kExamples / "actor_ref_critic_reward.json").colocate.size() == 2);
  CHECK(load_topology(kExamples / "all_separate.json").colocate.size() == 4);
  CHECK_THROWS_WITH(load_topology(kExamples / "missing.json"), Catch::Contains("missing.json: cannot open"));
}
