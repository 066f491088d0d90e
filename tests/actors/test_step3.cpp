/// Step 3 end to end on the actor runtime with tiny models: PPO with a reward model,
/// EMA and mixture training; GRPO with a reward function; what is saved and logged.
#include <catch2/catch.hpp>

#include <functional>
#include <torch/torch.h>

#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <future>
#include <thread>

#include <nlohmann/json.hpp>

#include "step3_world.hpp"

#include <troupe/actors/experience_batch.hpp>
#include "step3_role_specs.hpp"
#include <troupe/actors/step3_plan.hpp>
#include "step3_roles.hpp"
#include <troupe/actors/step3_trainer.hpp>
#include <troupe/actors/ticket_store.hpp>
#include <troupe/common/error.hpp>
#include <troupe/data/demo_corpus.hpp>
#include <troupe/data/demo_gold.hpp>
#include <troupe/engine/checkpoint.hpp>
#include <troupe/engine/metrics_log.hpp>
#include <troupe/engine/model_presets.hpp>
#include <troupe/models/bpe_trainer.hpp>
#include <troupe/models/bpe_tokenizer.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>
#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/reward_function.hpp>

using namespace troupe;
namespace fs = std::filesystem;

using namespace troupe::testing;

TEST_CASE("step 3: PPO cycles on the actor runtime with EMA and mixture training", "[actors][step3]") {
  Step3World world("ppo");
  auto config = world.config("ppo");
  config.enable_ema = true;
  config.unsupervised_data = world.data / "unsupervised.jsonl";
  config.unsup_coef = 0.5;
  fs::create_directories(config.output_dir);
  engine::MetricsLog metrics(config.output_dir / "metrics.jsonl", false);
  config.metrics = &metrics;
  auto result = actors::run_step3(config);

  CHECK(result.cycles == 2);
  CHECK(result.before.prompts == 4);
  CHECK(result.after.prompts == 4);
  CHECK(result.after_sampled.prompts == 4);
  CHECK(std::isfinite(result.after_sampled.reward_score));
  CHECK(std::isfinite(result.after.reward_score));
  CHECK(std::isfinite(result.after.kl_per_answer));
  // The actor moved, so the KL to the reference is no longer exactly zero; before any
  // update the policy is the reference.
  CHECK(result.before.kl_per_answer == Approx(0.0).margin(1e-4));
  for (const char* name : {"reward_score", "kl", "actor_loss", "critic_loss", "unsup_loss", "advantage", "return"}) {
    INFO(name);
    REQUIRE(result.last_metrics.count(name) == 1);
    CHECK(std::isfinite(result.last_metrics.at(name)));
  }
  CHECK(fs::exists(config.output_dir / "actor" / "config.json"));
  CHECK(fs::exists(config.output_dir / "actor" / "tokenizer.json"));
  CHECK(fs::exists(config.output_dir / "actor_ema" / "model.safetensors"));
  CHECK(fs::exists(config.output_dir / "critic" / "model.safetensors"));

  SECTION("the saved actor differs from the initial one, and the EMA lies between") {
    auto initial = models::load_pretrained(world.actor);
    auto trained = models::load_pretrained(config.output_dir / "actor");
    auto ema = models::load_pretrained(config.output_dir / "actor_ema");
    auto w0 = initial->named_parameters()[1].value(), w1 = trained->named_parameters()[1].value(),
         we = ema->named_parameters()[1].value();
    CHECK_FALSE(torch::equal(w0, w1));
    // Two EMA updates with beta 0.992 move the average less than 2% of the way.
    CHECK((we - w0).abs().max().item<double>() < (w1 - w0).abs().max().item<double>());
  }
  SECTION("every cycle and both evaluations are in metrics.jsonl") {
    auto rows = engine::read_metrics_log(config.output_dir / "metrics.jsonl");
    CHECK(rows_of(rows, "step3/train").size() == 2);
    CHECK(rows_of(rows, "step3/eval").size() == 2);
  }
}

TEST_CASE("step 3: GRPO with a C++ reward function needs no critic", "[actors][step3]") {
  Step3World world("grpo");
  auto& registry = rl::RewardFunctionRegistry::global();
  if (!registry.contains("test_demo_gold")) registry.register_reward_function("test_demo_gold", data::gold_score);
  auto config = world.config("grpo");
  config.algorithm = "grpo";
  config.critic_model.clear();
  config.reward_function = "test_demo_gold";
  config.eval_function = "test_demo_gold";
  auto result = actors::run_step3(config);
  CHECK(result.cycles == 2);
  CHECK(std::isfinite(result.after.gold_score));
  CHECK(result.after.gold_score == Approx(result.after.reward_score));
  CHECK(result.last_metrics.count("critic_loss") == 0);
  CHECK(fs::exists(config.output_dir / "actor" / "model.safetensors"));
  CHECK_FALSE(fs::exists(config.output_dir / "critic"));
}

TEST_CASE("step 3: ReMax scores each prompt's greedy answer as its baseline", "[actors][step3][remax]") {
  Step3World world("remax");
  auto& registry = rl::RewardFunctionRegistry::global();
  if (!registry.contains("test_demo_gold")) registry.register_reward_function("test_demo_gold", data::gold_score);
  auto config = world.config("remax");
  config.algorithm = "remax";
  config.critic_model.clear();
  config.reward_function = "test_demo_gold";
  config.eval_prompts = 0;
  // Greedy rollouts: each sampled answer is its prompt's greedy answer, so the baseline
  // equals the reward row for row.
  config.generation.do_sample = false;
  fs::create_directories(config.output_dir);
  engine::MetricsLog metrics(config.output_dir / "metrics.jsonl", false);
  config.metrics = &metrics;
  auto result = actors::run_step3(config);
  CHECK(result.cycles == 2);
  CHECK(result.last_metrics.count("critic_loss") == 0);
  const auto cycles = rows_of(engine::read_metrics_log(config.output_dir / "metrics.jsonl"), "step3/train");
  REQUIRE(cycles.size() == 2);
  for (const auto& cycle : cycles) {
    INFO(cycle.dump());
    REQUIRE(cycle.contains("baseline_reward"));
    CHECK(cycle.at("baseline_reward").get<double>() == Approx(cycle.at("reward_score").get<double>()).margin(1e-6));
  }
}

TEST_CASE("step 3: --dtype bf16 with a LoRA actor keeps the frozen base, reference and reward in bf16",
          "[actors][step3][bf16]") {
  Step3World world("bf16");
  auto config = world.config("bf16");
  config.actor_train.compute_dtype = torch::kBFloat16;
  config.critic_train.compute_dtype = torch::kBFloat16;
  config.actor_lora_dim = 4;
  config.only_optimize_lora = true;
  auto result = actors::run_step3(config);
  CHECK(result.cycles == 2);
  // The shared bf16 base scores exactly as the actor before any update: the adapters add 0.
  CHECK(result.before.kl_per_answer == 0.0);
  for (const char* name : {"reward_score", "kl", "actor_loss", "critic_loss"}) {
    INFO(name);
    REQUIRE(result.last_metrics.count(name) == 1);
    CHECK(std::isfinite(result.last_metrics.at(name)));
  }
  // The saved actor is an fp32 model: the bf16 base with the fp32 adapters merged in.
  auto saved = models::read_checkpoint(config.output_dir / "actor");
  int64_t fp32_linears = 0;
  for (const auto& [name, tensor] : saved) {
    INFO(name);
    CHECK(tensor.scalar_type() == torch::kFloat32);
    if (name.find("q_proj.weight") != std::string::npos) ++fp32_linears;
  }
  CHECK(fp32_linears > 0);
  // The adapters' delta survives the merge: it is added to the bf16 base in fp32 (in
  // bf16 a delta this small would mostly round away).
  const std::string key = "model.layers.0.self_attn.q_proj.weight";
  auto initial = models::read_checkpoint(world.actor);
  REQUIRE(initial.count(key) == 1);
  const auto base = initial.at(key).to(torch::kBFloat16).to(torch::kFloat32);  // as the run held it
  CHECK((saved.at(key) - base).abs().max().item<double>() > 0);
}

TEST_CASE("step 3: bad settings are refused with the flag named", "[actors][step3]") {
  Step3World world("bad");
  auto config = world.config("bad");
  config.algorithm = "ppo2";
  CHECK_THROWS_WITH(actors::run_step3(config), Catch::Contains("ppo2") && Catch::Contains("grpo"));
  config = world.config("bad");
  config.reward_function = "no_such_reward";
  CHECK_THROWS_WITH(actors::run_step3(config), Catch::Contains("no_such_reward"));
  config = world.config("bad");
  config.max_tokens_per_microbatch = -1;
  CHECK_THROWS_WITH(actors::run_step3(config), Catch::Contains("--max_tokens_per_microbatch -1: must be >= 0"));
  config = world.config("bad");
  config.inference_tp_size = 2;  // one actor rank: nobody to split the weights with
  CHECK_THROWS_WITH(actors::run_step3(config),
                    Catch::Contains("--inference_tp_size 2 does not divide the actor's 1 rank(s)"));
  // An actor whose heads do not split that way: refused naming the option and the field.
  auto spec = actors::actor_role_spec(world.config("bad"), {}, 1);
  spec.id.world = 4;
  spec.options["inference_tp_size"] = "4";
  spec.options["dp_rendezvous"] = "127.0.0.1:1";  // never reached: refused before any collective
  spec.options["model"] = (fs::path(TROUPE_FIXTURES_DIR) / "models" / "llama").string();  // 2 key/value heads
  actors::ProcessRoles here;
  CHECK_THROWS_WITH(actors::make_policy_role(spec, here),
                    Catch::Contains("inference_tp_size") && Catch::Contains("num_key_value_heads (2) divisible by 4"));
}

TEST_CASE("step 3: a worker's reference shares the base of the actor rank it hosts, as one process does",
          "[actors][step3]") {
  // What a worker of a data-parallel actor does: the actor's factory first, then the
  // reference's, in one process.
  Step3World world("worker_reference");
  auto config = world.config("worker_reference");
  config.actor_lora_dim = 4;
  config.only_optimize_lora = true;
  const auto factories = actors::step3_role_factories();
  actors::ProcessRoles here;
  auto actor = factories.at("step3_actor")(actors::actor_role_spec(config, config.generation, 10), here);
  auto reference = factories.at("step3_reference")(actors::reference_role_spec(config), here);
  CHECK_THAT(reference->describe(), Catch::Contains("shares the actor's weights"));
  // Another process's roles (its own ProcessRoles) hold no actor to share with.
  actors::ProcessRoles elsewhere;
  reference = factories.at("step3_reference")(actors::reference_role_spec(config), elsewhere);
  CHECK_THAT(reference->describe(), Catch::Contains("frozen copy"));
  // Without LoRA there is no base to share: a frozen copy, as in one process.
  config.actor_lora_dim = 0;
  config.only_optimize_lora = false;
  actor = factories.at("step3_actor")(actors::actor_role_spec(config, config.generation, 10), here);
  reference = factories.at("step3_reference")(actors::reference_role_spec(config), here);
  CHECK_THAT(reference->describe(), Catch::Contains("frozen copy"));
  // A reference of another model never shares.
  config.actor_lora_dim = 4;
  config.only_optimize_lora = true;
  actor = factories.at("step3_actor")(actors::actor_role_spec(config, config.generation, 10), here);
  auto other = config;
  other.actor_model = world.critic;
  reference = factories.at("step3_reference")(actors::reference_role_spec(other), here);
  CHECK_THAT(reference->describe(), Catch::Contains("frozen copy"));
  // Once the actor is gone nothing is shared.
  actor.reset();
  reference = factories.at("step3_reference")(actors::reference_role_spec(config), here);
  CHECK_THAT(reference->describe(), Catch::Contains("frozen copy"));
}

TEST_CASE("step 3: an experience crosses actors as one batch and comes back whole", "[actors][step3]") {
  auto exp = rl::Experience::from_generation(torch::ones({2, 3}, torch::kLong), torch::ones({2, 5}, torch::kLong),
                                             torch::ones({2, 5}, torch::kLong));
  exp.logprobs = torch::randn({2, 4});
  exp.advantages = torch::randn({2, 2});
  exp.set_extra("baseline", rl::Layout::Sample, torch::randn({2}));
  auto back = actors::experience_from_batch(actors::to_tensor_batch(exp));
  CHECK(torch::equal(back.logprobs, exp.logprobs));
  CHECK(torch::equal(back.advantages, exp.advantages));
  CHECK(torch::equal(back.extra("baseline"), exp.extra("baseline")));
  CHECK_FALSE(back.values.defined());
  CHECK_THROWS_WITH(actors::experience_from_batch({{"bogus", torch::zeros({2})}}), Catch::Contains("bogus"));
}

TEST_CASE("step 3: critic and reward in a worker process train as they do colocated", "[actors][step3][multiprocess]") {
  Step3World world("colocated_vs_apart");
  const auto topology = world.root / "actor_ref_critic_reward.json";
  std::ofstream(topology) << R"({"precision": "fp32",
    "batch": {"generation_batch_size": 4, "training_batch_size": 2, "prompt_len": 32, "answer_len": 6},
    "roles": {"actor": {}, "critic": {}, "reference": {}, "reward": {}},
    "colocate": [["actor", "reference"], ["critic", "reward"]]})";
  auto colocated = world.config("colocated");
  auto separated = world.config("separated");
  separated.topology = topology;
  separated.worker_program = TROUPE_CLI_PATH;
  auto here = actors::run_step3(colocated);
  auto apart = actors::run_step3(separated);

  CHECK(here.placement == "actor+reference+critic+reward in this process");
  CHECK_THAT(apart.placement, Catch::StartsWith("actor+reference in this process; critic+reward in worker process "));
  CHECK(here.remote_fetches == 0);
  // Per cycle: values and reward scores pulled from the worker, plus the evaluations'.
  CHECK(apart.remote_fetches >= 4);
  // The same computation in another process: the same rewards, losses and weights up
  // to the order of floating-point sums.
  REQUIRE(apart.cycles == here.cycles);
  for (const char* name : {"reward_score", "kl", "actor_loss", "critic_loss", "advantage", "return"}) {
    INFO(name);
    CHECK(apart.last_metrics.at(name) == Approx(here.last_metrics.at(name)).epsilon(1e-4).margin(1e-5));
  }
  CHECK(apart.after.reward_score == Approx(here.after.reward_score).epsilon(1e-4));
  auto critic_here = models::load_pretrained(colocated.output_dir / "critic", {torch::kCPU, {}, true});
  auto critic_apart = models::load_pretrained(separated.output_dir / "critic", {torch::kCPU, {}, true});
  auto a = critic_here->named_parameters(), b = critic_apart->named_parameters();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].key());
    CHECK(torch::allclose(a[i].value(), b[i].value(), 1e-4, 1e-5));
  }
}

TEST_CASE("step 3: a mixture corpus that cannot be read is refused while planning, before any model loads",
          "[actors][step3]") {
  Step3World world("bad_corpus");
  auto config = world.config("bad_corpus");
  config.unsupervised_data = world.root / "no_such_corpus.jsonl";
  config.unsup_coef = 0.5;
  CHECK_THROWS_WITH(actors::plan_step3(config), Catch::Contains("no_such_corpus.jsonl"));
  std::ofstream(world.root / "broken.jsonl") << "{\"text\": \"fine\"}\n{not json\n";
  config.unsupervised_data = world.root / "broken.jsonl";
  CHECK_THROWS_WITH(actors::plan_step3(config), Catch::Contains("broken.jsonl:2"));
  config.unsup_coef = 0;  // no mixture: the corpus is not read
  CHECK_NOTHROW(actors::plan_step3(config));
}

TEST_CASE("step 3: a topology it cannot run is refused before anything starts", "[actors][step3]") {
  Step3World world("wide");
  const auto topology = world.root / "wide.json";
  std::ofstream(topology) << R"({"roles": {"actor": {"devices": 2, "tp": 2}, "critic": {}}, "colocate": []})";
  auto config = world.config("wide");
  config.topology = topology;
  CHECK_THROWS_WITH(actors::run_step3(config), Catch::Contains("wide.json") && Catch::Contains("roles.actor.tp = 2"));
}

TEST_CASE("step 3: a data-parallel actor with its roles on two ranks scores as one process and keeps its ranks in step",
          "[actors][step3][multiprocess]") {
  Step3World world("actor_dp");
  // DeepSpeed-Chat's layout: every model on every device; rank 1 of each in a worker.
  // The reward model's layers are partitioned over its ranks (ZeRO 3).
  auto [one, two, ranked] = run_alone_and_on_two_ranks(
      world,
      R"({"actor": {"devices": 2, "zero_stage": 2}, "reference": {"devices": 2}, "critic": {"devices": 2},
          "reward": {"devices": 2, "zero_stage": 3}})",
      [&](actors::Step3Config& config) {
        config.enable_ema = true;
        config.unsupervised_data = world.data / "unsupervised.jsonl";
        config.unsup_coef = 0.5;
      });

  CHECK_THAT(two.placement, Catch::StartsWith("actor+reference+critic+reward in this process; "
                                              "actor+reference+critic+reward rank 1 in worker process "));
  check_same_first_cycle(one, two);
  // Both ranks trained on their rows, averaged (ZeRO 2: reduced) gradients, and hold the same weights.
  for (const char* role : {"actor", "critic"}) {
    INFO(role);
    CHECK(two.last_metrics.at(std::string(role) + "_dp_ranks") == 2);
    CHECK(two.last_metrics.at(std::string(role) + "_dp_divergence") == 0.0);
  }
  // The ranks scored the rollouts as they train on them.
  CHECK(two.last_metrics.at("actor_approx_kl_first") == 0.0);
  CHECK(std::isfinite(two.last_metrics.at("unsup_loss")));
  // ZeRO stage 2: a rank keeps part of AdamW's state for the actor.
  auto initial = models::load_pretrained(world.actor, {torch::kCPU, {}, false});
  int64_t parameters = 0;
  for (const auto& p : initial->parameters()) parameters += p.numel();
  CHECK(two.last_metrics.at("actor_optimizer_state_mib") * (1 << 20) < 0.75 * static_cast<double>(parameters) * 2 * 4);
  // Rank 0 saved the actor and its EMA, and the actor moved.
  auto trained = models::load_pretrained(ranked.output_dir / "actor", {torch::kCPU, {}, false});
  CHECK(fs::exists(ranked.output_dir / "actor_ema"));
  CHECK_FALSE(torch::equal(initial->named_parameters()[1].value(), trained->named_parameters()[1].value()));
}

TEST_CASE("step 3: actor ranks generating tensor-parallel (--inference_tp_size 2) answer as one process",
          "[actors][step3][multiprocess]") {
  Step3World world("actor_tp");
  // DeepSpeed-Chat's hybrid engine with inference_tp_size 2: the actor's two ranks train
  // data-parallel (ZeRO 2) and generate as one tensor-parallel group.
  auto [one, two, ranked] = run_alone_and_on_two_ranks(
      world,
      R"({"actor": {"devices": 2, "zero_stage": 2, "inference_tp_size": 2}, "reference": {"devices": 2},
          "critic": {"devices": 2}, "reward": {"devices": 2}})",
      [](actors::Step3Config& config) { config.eval_prompts = 3; });  // 3 prompts over 2 ranks: the shares differ

  check_same_first_cycle(one, two);
  CHECK(two.before.reward_score == Approx(one.before.reward_score).epsilon(1e-4).margin(1e-5));
  CHECK(two.last_metrics.at("actor_dp_divergence") == 0.0);
  CHECK(two.last_metrics.at("actor_approx_kl_first") == 0.0);  // generated tensor-parallel, scored whole: the same model
  CHECK(two.last_metrics.at("generation_tensor_parallel") == 2);
  CHECK(one.last_metrics.at("generation_tensor_parallel") == 1);
}

TEST_CASE("step 3: a data-parallel critic on two worker processes keeps its ranks in step", "[actors][step3][multiprocess]") {
  Step3World world("critic_dp");
  const auto topology = world.root / "critic_dp2.json";
  std::ofstream(topology) << R"({"precision": "fp32",
    "batch": {"generation_batch_size": 4, "training_batch_size": 2, "prompt_len": 32, "answer_len": 6},
    "roles": {"actor": {}, "reference": {}, "critic": {"devices": 2, "zero_stage": 2}, "reward": {"devices": 2}},
    "colocate": [["actor", "reference"], ["critic", "reward"]]})";
  // This machine may have fewer CPU threads than the three processes reserve.
  const auto cluster = world.root / "machine.json";
  std::ofstream(cluster) << R"({"nodes": [{"name": "local", "cpu_threads": 8, "memory": "8GiB"}]})";
  auto config = world.config("critic_dp2");
  config.topology = topology;
  config.cluster = cluster;
  config.worker_program = TROUPE_CLI_PATH;
  config.generation_batch_size = 5;  // odd: the ranks hold 2 and 3 rows and still step together
  config.ppo_epochs = 2;
  auto result = actors::run_step3(config);
  CHECK_THAT(result.placement, Catch::Contains("critic+reward in 2 data-parallel worker processes "));
  REQUIRE(result.cycles == 2);
  // Both ranks averaged their gradients before every step: their weights are equal.
  CHECK(result.last_metrics.at("critic_dp_ranks") == 2);
  CHECK(result.last_metrics.at("critic_dp_divergence") == 0.0);
  CHECK(std::isfinite(result.last_metrics.at("critic_loss")));
  CHECK(std::isfinite(result.after.reward_score));
  // Rank 0 saved the critic, and it moved from where it started.
  auto initial = models::load_pretrained(world.critic, {torch::kCPU, {}, true});
  auto trained = models::load_pretrained(config.output_dir / "critic", {torch::kCPU, {}, true});
  CHECK_FALSE(torch::equal(initial->named_parameters()[1].value(), trained->named_parameters()[1].value()));
  // zero_stage 2: a rank holds part of AdamW's two fp32 moments of the critic's parameters.
  int64_t parameters = 0;
  for (const auto& p : initial->parameters()) parameters += p.numel();
  const double whole_state = static_cast<double>(parameters) * 2 * 4;
  const double rank_state = result.last_metrics.at("critic_optimizer_state_mib") * (1 << 20);
  CHECK(rank_state > 0);
  CHECK(rank_state < 0.75 * whole_state);
}

namespace {

/// The pid of a child process of this one whose command line contains `needle`; -1 if none.
pid_t child_process_with(const std::string& needle) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string pid, comm, state;
    pid_t parent = 0;
    if (!(stat >> pid >> comm >> state >> parent) || parent != getpid()) continue;
    std::ifstream cmdline_file(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(cmdline_file)), {});
    if (cmdline.find(needle) != std::string::npos) return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

}  // namespace

TEST_CASE("step 3: a worker process lost mid-run stops the run at once and names what was lost", "[actors][step3][multiprocess]") {
  Step3World world("lost_worker");
  const auto topology = world.root / "apart.json";
  std::ofstream(topology) << R"({"precision": "fp32", "roles": {"actor": {}, "reference": {}, "critic": {}, "reward": {}},
    "colocate": [["actor", "reference"], ["critic", "reward"]]})";
  auto config = world.config("lost_worker");
  config.topology = topology;
  config.worker_program = TROUPE_CLI_PATH;
  config.max_steps = 100000;
  config.epochs = 100000;
  config.eval_prompts = 0;
  fs::create_directories(config.output_dir);
  engine::MetricsLog metrics(config.output_dir / "metrics.jsonl", false);
  config.metrics = &metrics;
  auto run = std::async(std::launch::async, [&] { return actors::run_step3(config); });
  // Wait until cycles are running, then kill the worker.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline &&
         rows_of(engine::read_metrics_log(config.output_dir / "metrics.jsonl"), "step3/train").size() < 2)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const pid_t worker = child_process_with("worker");
  REQUIRE(worker > 0);
  kill(worker, SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  REQUIRE(run.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  CHECK(std::chrono::steady_clock::now() - killed < std::chrono::seconds(10));
  // Lost during a request: the role's group answers "rank 0 is down"; lost while this
  // process pulls a batch from it: the pull names the worker's node.
  const auto host = actors::this_node_name().substr(0, actors::this_node_name().rfind(':'));
  CHECK_THROWS_WITH(run.get(), Catch::Contains("rank 0 is down") || Catch::Contains(host + ":" + std::to_string(worker)));
}

TEST_CASE("step 3: several generation batches per cycle give the answers of one big generation", "[actors][step3]") {
  Step3World world("generation_batches");
  auto actor = models::load_pretrained(world.actor);
  auto hybrid = std::make_shared<engine::HybridEngine>(actor);
  models::GenerationOptions generation;
  generation.max_new_tokens = 6;
  generation.do_sample = false;  // greedy: the same answer whatever the batch
  generation.pad_token_id = 2;
  std::shared_ptr<const rl::Algorithm> ppo = rl::AlgorithmRegistry::global().create("ppo", {});
  actors::PolicyRole policy(hybrid, engine::TrainOptions{}, generation, ppo, actors::PpoTrainingOptions{}, world.tokenizer);
  torch::manual_seed(4);
  const auto ids = torch::randint(4, 300, {5, 7}, torch::kLong);
  auto mask = torch::ones_like(ids);
  mask[1][0] = 0;  // left padding in one prompt
  const actors::TensorBatch prompts{{"input_ids", ids}, {"attention_mask", mask}};
  auto whole = policy.generate(prompts);
  policy.set_prompts_per_generation(2);  // three calls: 2 + 2 + 1 prompts
  const size_t calls_before = hybrid->timing_history().size();
  auto chunked = policy.generate(prompts);
  CHECK(hybrid->timing_history().size() - calls_before == 3);
  REQUIRE(chunked.at("sequences").size(0) == 5);
  for (int64_t row = 0; row < 5; ++row) {
    INFO("row " << row);
    auto real = [&](const actors::TensorBatch& batch) {
      return batch.at("sequences")[row].masked_select(batch.at("attention_mask")[row].to(torch::kBool));
    };
    CHECK(torch::equal(real(whole), real(chunked)));
  }
  CHECK(chunked.at("prompt_length")[0].item<int64_t>() == 7);
}
