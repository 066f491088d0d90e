/// The role specs' field tables (actors/src/step3_spec_tables.hpp): every options struct
/// written into a spec with values other than its defaults reads back equal, an absent
/// key keeps the default, and a malformed value names the role, factory and option.
#include <catch2/catch.hpp>

#include <limits>

#include "step3_role_specs.hpp"
#include <troupe/common/error.hpp>

#include "spec_fields.hpp"
#include "step3_spec_tables.hpp"

using namespace troupe;
using namespace troupe::actors;

namespace {

RoleSpec critic_rank_one() {
  RoleSpec spec;
  spec.factory = "step3_critic";
  spec.id = RoleId{"critic", 1, 2};
  return spec;
}

/// `options` written into a fresh spec and read back.
template <class Options>
Options round_trip(const Options& options) {
  auto spec = critic_rank_one();
  write_spec_fields(spec, options);
  return read_spec_fields<Options>(SpecReader(spec));
}

/// The error reading `Options` from a spec whose `key` is `value`.
template <class Options>
std::string error_reading(const std::string& key, const std::string& value) {
  auto spec = critic_rank_one();
  spec.options[key] = value;
  try {
    read_spec_fields<Options>(SpecReader(spec));
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("spec fields: every options struct reads back as written", "[actors][spec_fields]") {
  SECTION("engine::TrainOptions") {
    engine::TrainOptions o;
    o.optimizer.learning_rate = 0.1 + 0.2;  // 0.30000000000000004: needs all 17 digits
    o.optimizer.weight_decay = 0.01;
    o.optimizer.lora_learning_rate = 3e-4;
    o.optimizer.beta1 = 0.8;
    o.optimizer.beta2 = 0.999;
    o.optimizer.eps = 1e-6;
    o.schedule.type = engine::ScheduleType::ConstantWithWarmup;
    o.schedule.warmup_steps = 7;
    o.schedule.total_steps = 99;
    o.gradient_accumulation_steps = 3;
    o.max_grad_norm = 0.5;
    o.compute_dtype = torch::kBFloat16;
    const auto back = round_trip(o);
    CHECK(back.optimizer.learning_rate == o.optimizer.learning_rate);
    CHECK(back.optimizer.weight_decay == o.optimizer.weight_decay);
    CHECK(back.optimizer.lora_learning_rate == o.optimizer.lora_learning_rate);
    CHECK(back.optimizer.beta1 == o.optimizer.beta1);
    CHECK(back.optimizer.beta2 == o.optimizer.beta2);
    CHECK(back.optimizer.eps == o.optimizer.eps);
    CHECK(back.schedule.type == o.schedule.type);
    CHECK(back.schedule.warmup_steps == 7);
    CHECK(back.schedule.total_steps == 99);
    CHECK(back.gradient_accumulation_steps == 3);
    CHECK(back.max_grad_norm == 0.5);
    CHECK(back.compute_dtype == torch::kBFloat16);
  }
  SECTION("models::GenerationOptions") {
    models::GenerationOptions o;
    o.max_new_tokens = 9;
    o.do_sample = true;
    o.temperature = 0.7;
    o.top_k = 5;
    o.top_p = 0.9;
    o.seed = std::numeric_limits<uint64_t>::max() - 1;  // beyond a double's 53 bits
    o.eos_token_ids = {2, 7, 11};
    o.pad_token_id = 0;
    const auto back = round_trip(o);
    CHECK(back.max_new_tokens == 9);
    CHECK(back.do_sample);
    CHECK(back.temperature == 0.7);
    CHECK(back.top_k == 5);
    CHECK(back.top_p == 0.9);
    CHECK(back.seed == o.seed);
    CHECK(back.eos_token_ids == o.eos_token_ids);
    REQUIRE(back.pad_token_id);
    CHECK(*back.pad_token_id == 0);
  }
  SECTION("RoleModelOptions") {
    RoleModelOptions o;
    o.lora_dim = 8;
    o.lora_module_name = "self_attn";
    o.only_optimize_lora = true;
    o.gradient_checkpointing = true;
    o.dropout = 0.125;
    o.compute_dtype = torch::kBFloat16;
    const auto back = round_trip(o);
    CHECK(back.lora_dim == 8);
    CHECK(back.lora_module_name == "self_attn");
    CHECK(back.only_optimize_lora);
    CHECK(back.gradient_checkpointing);
    REQUIRE(back.dropout);
    CHECK(*back.dropout == 0.125);
    CHECK(back.compute_dtype == torch::kBFloat16);
    CHECK_FALSE(round_trip(RoleModelOptions{}).dropout);  // unset stays unset: the config's dropout
  }
  SECTION("PpoTrainingOptions") {
    PpoTrainingOptions o;
    o.ppo_epochs = 2;
    o.minibatch_size = 3;
    o.max_tokens_per_microbatch = 4096;
    o.enable_ema = true;
    o.ema_beta = 0.9;
    o.unsup_coef = 0.5;
    o.unsupervised_batch = 5;
    o.seed = 77;
    const auto back = round_trip(o);
    CHECK(back.ppo_epochs == 2);
    CHECK(back.minibatch_size == 3);
    CHECK(back.max_tokens_per_microbatch == 4096);
    CHECK(back.enable_ema);
    CHECK(back.ema_beta == 0.9);
    CHECK(back.unsup_coef == 0.5);
    CHECK(back.unsupervised_batch == 5);
    CHECK(back.seed == 77);
  }
  SECTION("engine::HybridEngineOptions") {
    engine::HybridEngineOptions o;
    o.release_inference_cache = true;
    o.inference_dtype = torch::kBFloat16;
    o.compute_dtype = torch::kBFloat16;
    o.pack_inference_weights = false;
    const auto back = round_trip(o);
    CHECK_FALSE(back.pack_inference_weights);
    CHECK(back.release_inference_cache);
    CHECK(back.inference_dtype == torch::kBFloat16);
    CHECK(back.compute_dtype == torch::kBFloat16);
  }
  SECTION("the actor's, the reward's, the data-parallel and the basic settings") {
    ActorSpecOptions actor;
    actor.unsupervised_data = "/corpus.jsonl";
    actor.unsupervised_block = 38;
    actor.prompts_per_generation = 4;
    actor.inference_tp_size = 2;
    const auto actor_back = round_trip(actor);
    CHECK(actor_back.unsupervised_data == "/corpus.jsonl");
    CHECK(actor_back.unsupervised_block == 38);
    CHECK(actor_back.prompts_per_generation == 4);
    CHECK(actor_back.inference_tp_size == 2);

    RewardSource reward;
    reward.url = "http://127.0.0.1:9/score";
    reward.remote.timeout_seconds = 7.5;
    reward.function = "demo_gold";
    const auto reward_back = round_trip(reward);
    CHECK(reward_back.url == reward.url);
    CHECK(reward_back.remote.timeout_seconds == 7.5);
    CHECK(reward_back.function == "demo_gold");

    DataParallelSpec group;
    group.rendezvous = "127.0.0.1:4000";
    group.collectives = Collectives::kUcx;
    group.zero_stage = 3;
    group.collective_timeout_seconds = 12;
    const auto group_back = round_trip(group);
    CHECK(group_back.rendezvous == group.rendezvous);
    CHECK(group_back.collectives == Collectives::kUcx);
    CHECK(group_back.zero_stage == 3);
    CHECK(group_back.collective_timeout_seconds == 12);

    RoleBasics basics;
    basics.model = "/models/actor";
    basics.tokenizer = "/tokenizer";
    basics.device = "cuda:1";
    basics.seed = 5;
    const auto basics_back = round_trip(basics);
    CHECK(basics_back.model == basics.model);
    CHECK(basics_back.tokenizer == "/tokenizer");
    CHECK(basics_back.device == "cuda:1");
    CHECK(basics_back.seed == 5);
    CHECK_FALSE(round_trip(RoleBasics{}).model);  // a reward function's spec names no model

    AlgorithmSpec algorithm{"grpo", {{"kl_ctl", 0.05}, {"group_size", 4}}};
    const auto algorithm_back = round_trip(algorithm);
    CHECK(algorithm_back.name == "grpo");
    CHECK(algorithm_back.options.values() == algorithm.options.values());
  }
}

TEST_CASE("spec fields: an absent key keeps the struct's default", "[actors][spec_fields]") {
  const auto spec = critic_rank_one();
  const SpecReader reader(spec);
  const auto train = read_spec_fields<engine::TrainOptions>(reader);
  const engine::TrainOptions defaults;
  CHECK(train.optimizer.learning_rate == defaults.optimizer.learning_rate);
  CHECK(train.optimizer.beta2 == defaults.optimizer.beta2);
  CHECK(train.schedule.type == defaults.schedule.type);
  CHECK(train.schedule.total_steps == defaults.schedule.total_steps);
  CHECK(train.max_grad_norm == defaults.max_grad_norm);
  CHECK(train.compute_dtype == defaults.compute_dtype);
  const auto ppo = read_spec_fields<PpoTrainingOptions>(reader);
  CHECK(ppo.minibatch_size == PpoTrainingOptions{}.minibatch_size);
  CHECK(ppo.seed == PpoTrainingOptions{}.seed);
  CHECK(read_spec_fields<models::GenerationOptions>(reader).max_new_tokens == models::GenerationOptions{}.max_new_tokens);
  CHECK(read_spec_fields<DataParallelSpec>(reader).collective_timeout_seconds == 300);
  CHECK(read_spec_fields<RoleBasics>(reader).device == "cpu");
}

TEST_CASE("spec fields: a malformed value names the role, the factory and the option", "[actors][spec_fields]") {
  const auto where = Catch::Contains("role critic rank 1 of 2 (factory step3_critic): option");
  CHECK_THAT(error_reading<engine::TrainOptions>("lr", "fast"), where && Catch::Contains("\"lr\" \"fast\" is not a number"));
  CHECK_THAT(error_reading<engine::TrainOptions>("warmup_steps", "2.5"),
             where && Catch::Contains("\"warmup_steps\" \"2.5\" is not a whole number"));
  CHECK_THAT(error_reading<engine::TrainOptions>("schedule", "wavy"),
             where && Catch::Contains("\"schedule\"") && Catch::Contains("wavy") && Catch::Contains("cosine"));
  CHECK_THAT(error_reading<engine::TrainOptions>("dtype", "fp16"),
             where && Catch::Contains("\"dtype\"") && Catch::Contains("loss scaling"));
  CHECK_THAT(error_reading<models::GenerationOptions>("do_sample", "yes"),
             where && Catch::Contains("\"do_sample\" \"yes\" is not 0 or 1"));
  CHECK_THAT(error_reading<models::GenerationOptions>("generation_seed", "-1"),
             where && Catch::Contains("\"generation_seed\" \"-1\" is not a whole number (0 or more)"));
  CHECK_THAT(error_reading<models::GenerationOptions>("eos_token_ids", "2,x"),
             where && Catch::Contains("\"eos_token_ids\" \"2,x\" is not a comma-separated list of whole numbers"));
  CHECK_THAT(error_reading<RoleModelOptions>("dropout", "0.1.2"), where && Catch::Contains("\"dropout\""));
  CHECK_THAT(error_reading<ActorSpecOptions>("inference_tp_size", "99999999999"),
             where && Catch::Contains("\"inference_tp_size\"") && Catch::Contains("fits an int"));
  CHECK_THAT(error_reading<engine::HybridEngineOptions>("inference_dtype", "int8"),
             where && Catch::Contains("\"inference_dtype\"") && Catch::Contains("int8"));
  CHECK_THAT(error_reading<DataParallelSpec>("dp_collectives", "mpi"),
             where && Catch::Contains("\"dp_collectives\"") && Catch::Contains("mpi"));
  CHECK_THAT(error_reading<AlgorithmSpec>("algo.kl_ctl", "much"), where && Catch::Contains("\"algo.kl_ctl\" \"much\""));
  // An empty number is an absent one: the default.
  auto spec = critic_rank_one();
  spec.options["lr"] = "";
  CHECK(read_spec_fields<engine::TrainOptions>(SpecReader(spec)).optimizer.learning_rate ==
        engine::TrainOptions{}.optimizer.learning_rate);
}

TEST_CASE("spec fields: two structs that share a key must agree on it", "[actors][spec_fields]") {
  auto spec = critic_rank_one();
  engine::TrainOptions train;
  train.compute_dtype = torch::kBFloat16;
  write_spec_fields(spec, train);
  RoleModelOptions model;  // fp32
  CHECK_THROWS_WITH(write_spec_fields(spec, model),
                    Catch::Contains("option \"dtype\" written as \"bf16\" and as \"fp32\""));
  model.compute_dtype = torch::kBFloat16;
  CHECK_NOTHROW(write_spec_fields(spec, model));
}

TEST_CASE("spec fields: the step-3 role specs carry the config's settings to the factories' reads",
          "[actors][spec_fields]") {
  Step3Config config;
  config.actor_model = "/models/actor";
  config.critic_model = "/models/critic";
  config.seed = 99;
  config.device = torch::Device("cuda");
  config.algorithm = "grpo";
  config.algorithm_options.set("kl_ctl", 0.02);
  config.generation.max_new_tokens = 12;
  config.generation.temperature = 0.6;
  config.generation.eos_token_ids = {3};
  config.actor_train.optimizer.learning_rate = 1.5e-5;
  config.actor_train.schedule.type = engine::ScheduleType::Linear;
  config.actor_train.compute_dtype = torch::kBFloat16;
  config.critic_train.optimizer.learning_rate = 2.5e-5;
  config.actor_lora_dim = 8;
  config.only_optimize_lora = true;
  config.dropout = 0.0;
  config.enable_ema = true;
  config.release_inference_cache = true;
  config.inference_dtype = "bf16";
  config.ppo_epochs = 2;
  config.training_batch_size = 3;
  config.max_tokens_per_microbatch = 512;
  config.generation_batches = 2;
  config.generation_batch_size = 6;
  config.inference_tp_size = 2;

  const auto actor = actor_role_spec(config, config.generation, 40);
  const SpecReader reader(actor);
  const auto basics = read_spec_fields<RoleBasics>(reader);
  CHECK(basics.model == "/models/actor");
  CHECK(basics.device == "cuda");
  CHECK(basics.seed == 99);
  const auto train = read_spec_fields<engine::TrainOptions>(reader);
  CHECK(train.optimizer.learning_rate == 1.5e-5);
  CHECK(train.schedule.type == engine::ScheduleType::Linear);
  CHECK(train.schedule.total_steps == 40);
  CHECK(train.compute_dtype == torch::kBFloat16);
  const auto generation = read_spec_fields<models::GenerationOptions>(reader);
  CHECK(generation.max_new_tokens == 12);
  CHECK(generation.temperature == 0.6);
  CHECK(generation.eos_token_ids == std::vector<int64_t>{3});
  const auto model = read_spec_fields<RoleModelOptions>(reader);
  CHECK(model.lora_dim == 8);
  CHECK(model.only_optimize_lora);
  REQUIRE(model.dropout);
  CHECK(*model.dropout == 0.0);
  CHECK(model.compute_dtype == torch::kBFloat16);
  const auto hybrid = read_spec_fields<engine::HybridEngineOptions>(reader);
  CHECK(hybrid.release_inference_cache);
  CHECK(hybrid.inference_dtype == torch::kBFloat16);
  CHECK(hybrid.compute_dtype == torch::kBFloat16);
  CHECK(hybrid.pack_inference_weights);
  const auto ppo = read_spec_fields<PpoTrainingOptions>(reader);
  CHECK(ppo.enable_ema);
  CHECK(ppo.ppo_epochs == 2);
  CHECK(ppo.minibatch_size == 3);
  CHECK(ppo.max_tokens_per_microbatch == 512);
  CHECK(ppo.seed == 99);
  const auto settings = read_spec_fields<ActorSpecOptions>(reader);
  CHECK(settings.prompts_per_generation == 6);
  CHECK(settings.inference_tp_size == 2);
  CHECK(settings.unsupervised_data.empty());  // no corpus: nothing to send
  const auto algorithm = read_spec_fields<AlgorithmSpec>(reader);
  CHECK(algorithm.name == "grpo");
  CHECK(algorithm.options.values() == config.algorithm_options.values());

  const auto critic = critic_role_spec(config, 30);
  const auto critic_train = read_spec_fields<engine::TrainOptions>(SpecReader(critic));
  CHECK(critic_train.optimizer.learning_rate == 2.5e-5);
  CHECK(critic_train.schedule.total_steps == 30);
  CHECK_FALSE(read_spec_fields<PpoTrainingOptions>(SpecReader(critic)).enable_ema);  // the actor's only

  const auto reference = reference_role_spec(config);
  const auto reference_model = read_spec_fields<RoleModelOptions>(SpecReader(reference));
  CHECK(reference_model.lora_dim == 0);  // a frozen copy of the initial policy
  CHECK(reference_model.compute_dtype == torch::kBFloat16);  // computes as the actor does
  CHECK(read_spec_fields<RoleBasics>(SpecReader(reference)).model == "/models/actor");
}
