/// run_step3: the step-3 loop on the actor runtime (all roles colocated in this process).
#include <troupe/actors/step3_trainer.hpp>

#include <chrono>
#include <cmath>
#include <iostream>

#include <caf/all.hpp>
#include <torch/torch.h>

#include <troupe/actors/controller.hpp>
#include <troupe/actors/experience_batch.hpp>
#include <troupe/actors/role_actors.hpp>
#include <troupe/actors/step3_roles.hpp>
#include <troupe/actors/system_config.hpp>
#include <troupe/common/error.hpp>
#include <troupe/data/collate.hpp>
#include <troupe/data/sampler.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/metrics_log.hpp>
#include <troupe/engine/progress.hpp>
#include <troupe/engine/tensorboard_writer.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/answer_filter.hpp>
#include <troupe/rl/experience_metrics.hpp>

namespace troupe::actors {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

models::CausalLM load_model(const std::filesystem::path& dir, bool value_head, const Step3Config& config,
                            int64_t lora_dim, const char* role, bool gradient_checkpointing = false) {
  if (dir.empty()) throw Error(std::string("step 3: no ") + role + " model given");
  models::LoadOptions options;
  options.device = config.device;
  options.value_head = value_head;
  auto model = models::load_pretrained(dir, options);
  if (lora_dim > 0) {
    models::LoraOptions lora;
    lora.rank = lora_dim;
    lora.module_filter = config.lora_module_name;
    models::apply_lora(*model, lora);
    if (config.only_optimize_lora) models::only_optimize_lora(*model);
  }
  model->set_gradient_checkpointing(gradient_checkpointing);
  if (config.dropout) models::set_dropout(*model, *config.dropout);
  return model;
}

/// Optimizer steps one model takes over the run (the schedule's length).
int64_t planned_updates(int64_t cycles, int64_t rows, const Step3Config& config, int64_t per_cycle_extra) {
  const int64_t minibatches = (rows + config.training_batch_size - 1) / config.training_batch_size;
  return std::max<int64_t>(1, cycles * config.ppo_epochs * minibatches * (1 + per_cycle_extra));
}

std::vector<std::vector<int64_t>> eval_prompt_batches(int64_t available, const Step3Config& config) {
  if (config.eval_prompts <= 0) return {};
  return data::sequential_batches(available, config.generation_batch_size, config.eval_prompts);
}

void log_metrics(const Step3Config& config, const std::string& kind, int64_t step,
                 const std::map<std::string, double>& values) {
  if (config.metrics) config.metrics->log("step3/" + kind, step, values);
  if (config.tensorboard)
    for (const auto& [name, value] : values)
      config.tensorboard->add_scalar("step3/" + kind + "/" + name, static_cast<float>(value), step);
}

}  // namespace

namespace {

/// Everything the evaluation needs, built once.
struct Evaluator {
  const Step3Config& config;
  engine::HybridEngine& hybrid;
  engine::ReferencePolicy& reference;
  RoleModel& reward;
  std::shared_ptr<rl::RewardFunction> gold;
  const models::Tokenizer& tokenizer;
  const data::PhaseDataset& prompts;
  int64_t pad_id;

  /// Greedy answers, or (sampled) answers drawn as the rollouts are, with a fixed seed so
  /// that before and after see the same random stream.
  PolicyEvaluation run(bool sampled = false) const {
    PolicyEvaluation result;
    double reward_sum = 0, gold_sum = 0, kl_sum = 0, length_sum = 0;
    auto greedy = config.generation;
    greedy.do_sample = sampled && config.generation.do_sample;
    greedy.seed = config.seed + 7919;
    for (const auto& indices : eval_prompt_batches(prompts.size(), config)) {
      auto batch = data::make_step3_batch(prompts, indices, config.data.lengths.max_prompt_seq_len, pad_id);
      const auto device = config.device;
      auto out = hybrid.generate(batch.input_ids.to(device), batch.attention_mask.to(device), greedy);
      TensorBatch rollouts{{"sequences", out.sequences},
                           {"attention_mask", out.attention_mask},
                           {"prompt_length", torch::full({out.sequences.size(0)}, out.prompt_length, torch::kLong)}};
      auto exp = rl::Experience::from_generation(out.sequences.slice(1, 0, out.prompt_length), out.sequences,
                                                 out.attention_mask);
      exp.logprobs = hybrid.score_logprobs(out.sequences, out.attention_mask);
      exp.ref_logprobs = reference.logprobs(out.sequences, out.attention_mask);
      exp.reward_score = reward.score(rollouts).at("reward_score");
      auto metrics = rl::experience_metrics(exp);
      const double rows = static_cast<double>(indices.size());
      reward_sum += metrics["reward_score"] * rows;
      kl_sum += metrics["kl_per_answer"] * rows;
      length_sum += metrics["answer_length"] * rows;
      auto [prompt_texts, answers] = decode_rollouts(tokenizer, out.sequences, out.attention_mask, out.prompt_length);
      if (gold) gold_sum += gold->score_batch(prompt_texts, answers).sum().item<double>();
      for (size_t i = 0; i < prompt_texts.size() && result.examples.size() < 4; ++i)
        result.examples.emplace_back(prompt_texts[i], answers[i]);
      result.prompts += static_cast<int64_t>(indices.size());
    }
    if (result.prompts == 0) return result;
    const double n = static_cast<double>(result.prompts);
    result.reward_score = reward_sum / n;
    result.kl_per_answer = kl_sum / n;
    result.answer_length = length_sum / n;
    if (gold) result.gold_score = gold_sum / n;
    return result;
  }
};

std::map<std::string, double> evaluation_metrics(const PolicyEvaluation& greedy, const PolicyEvaluation& sampled) {
  std::map<std::string, double> values{{"reward_score", greedy.reward_score},
                                       {"kl_per_answer", greedy.kl_per_answer},
                                       {"answer_length", greedy.answer_length},
                                       {"sampled_reward_score", sampled.reward_score},
                                       {"sampled_kl_per_answer", sampled.kl_per_answer}};
  if (!std::isnan(greedy.gold_score)) values["gold_score"] = greedy.gold_score;
  if (!std::isnan(sampled.gold_score)) values["sampled_gold_score"] = sampled.gold_score;
  return values;
}

}  // namespace

Step3Result run_step3(const Step3Config& config) {
  const auto started = Clock::now();
  torch::manual_seed(config.seed);
  if (config.generation_batch_size < 1 || config.training_batch_size < 1 || config.ppo_epochs < 1 ||
      config.generation_batches < 1)
    throw Error("step 3: --per_device_generation_batch_size, --per_device_training_batch_size, --ppo_epochs and "
                "--generation_batches must be at least 1");
  std::shared_ptr<rl::Algorithm> algorithm =
      rl::AlgorithmRegistry::global().create(config.algorithm, config.algorithm_options);

  const auto tokenizer_dir = config.data.tokenizer_dir.empty() ? config.actor_model : config.data.tokenizer_dir;
  std::shared_ptr<const models::Tokenizer> tokenizer = models::load_tokenizer(tokenizer_dir);
  const int64_t pad_id = data::pad_token_id(*tokenizer);
  auto generation = config.generation;
  generation.pad_token_id = pad_id;
  if (generation.eos_token_ids.empty() && tokenizer->eos_token_id())
    generation.eos_token_ids = {*tokenizer->eos_token_id()};

  auto phase = data::load_phase_data(config.data, 3);
  if (phase.train.size() == 0) throw Error("step 3: no training prompts (check --data_path, --data_split and --max_prompt_seq_len)");

  // --- models and roles ---------------------------------------------------------------
  auto actor = load_model(config.actor_model, false, config, config.actor_lora_dim, "actor",
                          config.actor_gradient_checkpointing);
  engine::HybridEngineOptions hybrid_options;
  hybrid_options.release_inference_cache = config.release_inference_cache;
  hybrid_options.log_switches = false;
  auto hybrid = std::make_shared<engine::HybridEngine>(actor, hybrid_options);
  auto reference = std::make_shared<engine::ReferencePolicy>(actor, hybrid->model_mutex());
  if (config.offload_reference_model && !reference->offload_to(torch::kCPU))
    std::clog << "step3: --offload_reference_model: the reference shares the actor's weights; nothing to offload\n";

  std::shared_ptr<RewardRole> reward;
  if (!config.reward_function.empty()) {
    reward = std::make_shared<RewardRole>(rl::RewardFunctionRegistry::global().create(config.reward_function), tokenizer,
                                          config.reward_function);
  } else {
    const auto dir = config.reward_model.empty() ? config.critic_model : config.reward_model;
    reward = std::make_shared<RewardRole>(load_model(dir, true, config, 0, "reward"));
  }
  std::shared_ptr<rl::RewardFunction> gold;
  if (!config.eval_function.empty()) gold = rl::RewardFunctionRegistry::global().create(config.eval_function);

  std::shared_ptr<data::UnsupervisedBlocks> unsupervised;
  if (!config.unsupervised_data.empty() && config.unsup_coef > 0) {
    const int64_t block = config.data.lengths.max_prompt_seq_len + config.generation.max_new_tokens;
    unsupervised = std::make_shared<data::UnsupervisedBlocks>(
        data::make_unsupervised_blocks(data::read_text_corpus(config.unsupervised_data), *tokenizer, block));
  }

  const int64_t rows_per_cycle = config.generation_batch_size * config.generation_batches;
  data::SamplerOptions sampler;
  sampler.seed = config.seed;
  const int64_t cycles_per_epoch =
      static_cast<int64_t>(data::distributed_batches(phase.train.size(), rows_per_cycle, sampler).size());
  int64_t total_cycles = config.epochs * cycles_per_epoch;
  if (config.max_steps > 0) total_cycles = std::min(total_cycles, config.max_steps);
  const int64_t rows = rows_per_cycle * algorithm->samples_per_prompt();

  PpoTrainingOptions ppo;
  ppo.ppo_epochs = config.ppo_epochs;
  ppo.minibatch_size = config.training_batch_size;
  ppo.enable_ema = config.enable_ema;
  ppo.unsupervised = unsupervised;
  ppo.unsup_coef = config.unsup_coef;
  ppo.unsupervised_batch = config.training_batch_size;
  ppo.seed = config.seed;
  auto actor_train = config.actor_train;
  actor_train.schedule.total_steps = planned_updates(total_cycles, rows, config, unsupervised ? 1 : 0);
  auto policy_role = std::make_shared<PolicyRole>(hybrid, actor_train, generation, algorithm, ppo, tokenizer_dir);

  std::shared_ptr<RoleModel> critic_role;
  std::shared_ptr<CriticRole> trained_critic;
  if (algorithm->roles().critic) {
    auto critic_train = config.critic_train;
    critic_train.schedule.total_steps = planned_updates(total_cycles, rows, config, 0);
    trained_critic = std::make_shared<CriticRole>(load_model(config.critic_model, true, config, config.critic_lora_dim, "critic",
                                                             config.critic_gradient_checkpointing),
                                                  critic_train, algorithm, ppo, tokenizer_dir);
    critic_role = trained_critic;
  } else {
    critic_role = std::make_shared<NoCriticRole>();
  }

  Step3Result result;
  result.reference_memory = reference->memory_summary();
  std::clog << "step3: " << policy_role->describe() << "; " << critic_role->describe() << "; " << reward->describe()
            << "; " << result.reference_memory << "\n";

  Evaluator evaluator{config, *hybrid, *reference, *reward, gold, *tokenizer, phase.eval, pad_id};
  if (config.eval_prompts > 0) {
    result.before = evaluator.run();
    result.before_sampled = evaluator.run(true);
    log_metrics(config, "eval", 0, evaluation_metrics(result.before, result.before_sampled));
  }

  // --- the actor runtime -------------------------------------------------------------
  SystemConfig system_config;
  caf::actor_system system{system_config};
  auto store = std::make_shared<InProcessTicketStore>();
  auto context = [&](const std::string& role, std::shared_ptr<RoleModel> model) {
    return RoleContext{RoleId{role, 0, 1}, std::move(model), store};
  };
  StepThreeRoles roles{spawn_policy(system, context("actor", policy_role)),
                       spawn_critic(system, context("critic", critic_role)),
                       spawn_reference(system, context("reference", std::make_shared<ReferenceRole>(reference))),
                       spawn_reward(system, context("reward", reward))};

  std::map<std::string, double> experience_values;
  auto make_experience = [&](const ExperienceTickets& tickets, int64_t) {
    auto generated = fetch_all(*store, tickets.sequences);
    const auto& sequences = generated.at("sequences");
    const int64_t prompt_length = generated.at("prompt_length")[0].item<int64_t>();
    auto exp = rl::Experience::from_generation(sequences.slice(1, 0, prompt_length), sequences,
                                               generated.at("attention_mask"));
    exp.logprobs = fetch_all(*store, tickets.logprobs).at("logprobs");
    exp.ref_logprobs = fetch_all(*store, tickets.ref_logprobs).at("ref_logprobs");
    exp.values = fetch_all(*store, tickets.values).at("values").to(exp.logprobs.device());
    exp.reward_score = fetch_all(*store, tickets.rewards).at("reward_score").to(exp.logprobs.device());
    auto kept = rl::drop_short_answers(exp);
    experience_values = {{"dropped_answers", static_cast<double>(exp.batch_size() - kept.batch_size())}};
    if (kept.batch_size() == 0) return std::vector<TicketList>{};
    algorithm->compute_advantages(kept);
    for (const auto& [name, value] : rl::experience_metrics(kept)) experience_values[name] = value;
    return std::vector<TicketList>{TicketList{{store->publish(to_tensor_batch(kept))}}};
  };
  Controller controller(system, roles, make_experience);

  engine::ProgressReporter progress("step3", total_cycles);
  int64_t cycle = 0;
  for (int64_t epoch = 0; epoch < config.epochs && cycle < total_cycles; ++epoch) {
    sampler.epoch = epoch;
    for (const auto& indices : data::distributed_batches(phase.train.size(), rows_per_cycle, sampler)) {
      if (cycle >= total_cycles) break;
      const auto cycle_started = Clock::now();
      auto prompts = data::make_step3_batch(phase.train, indices, config.data.lengths.max_prompt_seq_len, pad_id);
      auto prompt_ticket = store->publish({{"input_ids", prompts.input_ids}, {"attention_mask", prompts.attention_mask}});
      auto cycle_result = controller.run_cycle(TicketList{{prompt_ticket}}, cycle);
      ++cycle;

      // Every batch of the cycle is consumed: release them so memory stays flat.
      const auto& e = cycle_result.experience;
      int64_t tokens = 0;
      if (!e.sequences.tickets.empty())
        tokens = fetch_all(*store, e.sequences).at("attention_mask").sum().item<int64_t>();
      for (const auto* list : {&e.prompts, &e.sequences, &e.logprobs, &e.ref_logprobs, &e.values, &e.rewards})
        for (const auto& ticket : list->tickets) store->release(ticket);
      for (const auto& list : cycle_result.training)
        for (const auto& ticket : list.tickets) store->release(ticket);

      const auto& timings = hybrid->last_timings();
      std::map<std::string, double> values = experience_values;
      for (const auto& [name, value] : cycle_result.policy.values) values[name] = value;
      for (const auto& [name, value] : cycle_result.critic.values) values[name] = value;
      const double cycle_seconds = seconds_since(cycle_started);
      values["generate_seconds"] = timings.generate_seconds;
      values["switch_seconds"] = timings.fuse_seconds + timings.unfuse_seconds;  // into inference layout and back
      values["cycle_seconds"] = cycle_seconds;
      values["tokens_per_second"] = static_cast<double>(tokens) / cycle_seconds;
      for (const auto& [name, value] : values)
        if (!std::isfinite(value)) throw Error("step 3: " + name + " is " + std::to_string(value) + " at cycle " + std::to_string(cycle));
      log_metrics(config, "train", cycle, values);
      result.generate_seconds += timings.generate_seconds;
      result.tokens += tokens;
      result.last_metrics = values;
      progress.update(cycle, values.count("actor_loss") ? values["actor_loss"] : 0.0, tokens);
      if (config.eval_interval > 0 && cycle % config.eval_interval == 0 && cycle < total_cycles)
        log_metrics(config, "eval", cycle, evaluation_metrics(evaluator.run(), evaluator.run(true)));
    }
  }
  progress.finish();
  result.cycles = cycle;
  if (config.eval_prompts > 0) {
    result.after = evaluator.run();
    result.after_sampled = evaluator.run(true);
    log_metrics(config, "eval", cycle, evaluation_metrics(result.after, result.after_sampled));
  }
  if (!config.output_dir.empty()) {
    policy_role->save((config.output_dir / "actor").string());
    if (trained_critic) trained_critic->save((config.output_dir / "critic").string());
  }
  result.seconds = seconds_since(started);
  return result;
}

}  // namespace troupe::actors
