// Step 3 with the actor and the critic under ZeRO stage 3 over two ranks (rank 1 in a
// worker process): the same cycles as plain data parallelism (ZeRO 0, whole weights on
// every rank, gradients all-reduced), with a fraction of the parameters resident.
#include "step3_world.hpp"

#include <cmath>

#include <troupe/models/pretrained.hpp>

using namespace troupe;
using namespace troupe::testing;

namespace {

/// Step 3 for two cycles with every role on two ranks, colocated, every role at
/// `zero_stage` (the reference is a frozen copy: the actor has no LoRA). Greedy, so both
/// layouts answer alike.
actors::Step3Result run_two_ranks(const Step3World& world, const std::string& name, int zero_stage,
                                  const std::function<void(actors::Step3Config&)>& adjust) {
  const auto topology = world.root / (name + ".json");
  const auto stage = std::to_string(zero_stage);
  std::ofstream(topology) << R"({"precision": "fp32",
    "batch": {"generation_batch_size": 4, "training_batch_size": 2, "prompt_len": 32, "answer_len": 6},
    "roles": {"actor": {"devices": 2, "zero_stage": )" << stage << R"(}, "reference": {"devices": 2, "zero_stage": )" << stage << R"(},
              "critic": {"devices": 2, "zero_stage": )" << stage << R"(},
              "reward": {"devices": 2, "zero_stage": )" << stage << R"(}},
    "colocate": [["actor", "reference", "critic", "reward"]]})";
  const auto cluster = world.root / "machine.json";
  std::ofstream(cluster) << R"({"nodes": [{"name": "local", "cpu_threads": 8, "memory": "8GiB"}]})";
  auto config = world.config(name);
  config.topology = topology;
  config.cluster = cluster;
  config.worker_program = TROUPE_CLI_PATH;
  config.generation.do_sample = false;
  config.generation_batch_size = 3;  // per rank; with 3 rows and minibatches of 2 a rank also steps on 1 row
  config.max_steps = 2;
  config.eval_prompts = 3;  // 2 and 1: the ranks' shares differ
  adjust(config);
  return actors::run_step3(config);
}

/// Every parameter of the models saved under `a` and `b` agrees within 1e-5 relative.
void check_same_weights(const fs::path& a, const fs::path& b, bool value_head) {
  auto x = models::load_pretrained(a, {torch::kCPU, {}, value_head});
  auto y = models::load_pretrained(b, {torch::kCPU, {}, value_head});
  auto px = x->named_parameters(), py = y->named_parameters();
  REQUIRE(px.size() == py.size());
  for (size_t i = 0; i < px.size(); ++i) {
    INFO(a.filename().string() << " " << px[i].key());
    CHECK(torch::allclose(px[i].value(), py[i].value(), 1e-5, 1e-6));
  }
}

}  // namespace

TEST_CASE("step 3: a ZeRO-3 actor, critic, reference and reward model on two ranks train as plain data parallelism does",
          "[actors][step3][multiprocess][zero3]") {
  Step3World world("zero3");
  auto both = [&](actors::Step3Config& config) {
    config.enable_ema = true;
    config.unsupervised_data = world.data / "unsupervised.jsonl";
    config.unsup_coef = 0.5;
  };
  auto whole = run_two_ranks(world, "zero0", 0, both);
  auto parted = run_two_ranks(world, "zero3", 3, both);

  REQUIRE(parted.cycles == 2);
  REQUIRE(whole.cycles == 2);
  // The same experience, losses and updates: ZeRO-3 changes where the weights live only.
  for (const char* name : {"reward_score", "kl", "value", "advantage", "return", "answer_length", "actor_loss",
                           "critic_loss", "unsup_loss", "actor_grad_norm", "critic_grad_norm", "actor_approx_kl"}) {
    INFO(name);
    CHECK(parted.last_metrics.at(name) == Approx(whole.last_metrics.at(name)).epsilon(1e-5).margin(1e-6));
  }
  CHECK(parted.before.reward_score == Approx(whole.before.reward_score).epsilon(1e-5));
  CHECK(parted.after.reward_score == Approx(whole.after.reward_score).epsilon(1e-5));
  // Rank 0 saved what the two ranks hold between them: the same actor, EMA and critic.
  check_same_weights(world.root / "zero3" / "actor", world.root / "zero0" / "actor", false);
  check_same_weights(world.root / "zero3" / "actor_ema", world.root / "zero0" / "actor_ema", false);
  check_same_weights(world.root / "zero3" / "critic", world.root / "zero0" / "critic", true);

  // Each rank holds its half of the decoder layers plus what is kept whole (embeddings,
  // norms, heads), and gathered the whole actor to generate.
  for (const char* role : {"actor", "critic"}) {
    INFO(role);
    const std::string r = role;
    CHECK(parted.last_metrics.at(r + "_zero_stage") == 3);
    CHECK(whole.last_metrics.at(r + "_zero_stage") == 0);
    CHECK(parted.last_metrics.at(r + "_param_resident_mib") < 0.8 * whole.last_metrics.at(r + "_param_resident_mib"));
  }
  // The reference, a frozen copy, holds its half of the layers too (ref_logprobs above
  // matched: the kl metric reads them).
  CHECK(parted.reference_memory.find("ZeRO-3: layers partitioned over 2 ranks") != std::string::npos);
  CHECK(whole.reference_memory.find("ZeRO-3") == std::string::npos);
  CHECK(parted.last_metrics.at("actor_reshard_mib") > 0);
  CHECK(whole.last_metrics.at("actor_reshard_mib") == 0);
}

TEST_CASE("step 3: a ZeRO-3 actor generating tensor-parallel reshards its slices and trains as plain data parallelism",
          "[actors][step3][multiprocess][zero3][tensor_parallel]") {
  Step3World world("zero3_tp");
  auto tensor_parallel = [](actors::Step3Config& config) { config.inference_tp_size = 2; };
  auto whole = run_two_ranks(world, "zero0_tp2", 0, tensor_parallel);
  auto parted = run_two_ranks(world, "zero3_tp2", 3, tensor_parallel);
  REQUIRE(parted.cycles == 2);
  REQUIRE(whole.cycles == 2);
  for (const char* name : {"reward_score", "kl", "value", "advantage", "answer_length", "actor_loss", "critic_loss",
                           "actor_grad_norm", "critic_grad_norm"}) {
    INFO(name);
    CHECK(parted.last_metrics.at(name) == Approx(whole.last_metrics.at(name)).epsilon(1e-5).margin(1e-6));
  }
  CHECK(parted.after.reward_score == Approx(whole.after.reward_score).epsilon(1e-5));
  check_same_weights(world.root / "zero3_tp2" / "actor", world.root / "zero0_tp2" / "actor", false);
  // Each rank received only what the other rank holds of its slice, less than the
  // whole-model gather of generating alone moves (the engine's tests check the exact
  // minimum).
  auto alone = run_two_ranks(world, "zero3_tp1", 3, [](actors::Step3Config&) {});
  CHECK(parted.last_metrics.at("actor_reshard_mib") > 0);
  CHECK(parted.last_metrics.at("actor_reshard_mib") < 0.9 * alone.last_metrics.at("actor_reshard_mib"));
}
