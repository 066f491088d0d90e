/// run_step3: the step-3 loop on the actor runtime (roles in this process or in workers).
#include <troupe/actors/step3_trainer.hpp>

#include <chrono>
#include <cmath>
#include <iostream>

#include <caf/all.hpp>
#include <torch/torch.h>

#include <troupe/actors/controller.hpp>
#include <troupe/actors/data_parallel.hpp>
#include <troupe/actors/host_port.hpp>
#include <troupe/actors/experience_batch.hpp>
#include <troupe/actors/role_actors.hpp>
#include <troupe/actors/step3_models.hpp>
#include <troupe/actors/step3_placement.hpp>
#include <troupe/actors/step3_role_specs.hpp>
#include <troupe/actors/step3_roles.hpp>
#include <troupe/actors/system_config.hpp>
#include <troupe/actors/ucx_ticket_store.hpp>
#include <troupe/actors/worker_group.hpp>
#include <troupe/actors/worker_processes.hpp>
#include <troupe/common/error.hpp>
#include <troupe/data/collate.hpp>
#include <troupe/data/sampler.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/metrics_log.hpp>
#include <troupe/engine/progress.hpp>
#include <troupe/engine/tensorboard_writer.hpp>
#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/answer_filter.hpp>
#include <troupe/rl/experience_metrics.hpp>

namespace troupe::actors {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
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

/// How long one request to a role may take (loading a model in a worker included).
constexpr auto role_patience = std::chrono::minutes(30);

/// One request to a role actor and its reply; throws troupe::Error naming `what` and
/// the role's error.
template <class Reply, class Handle, class... Ts>
Reply ask(caf::actor_system& system, const Handle& role, const std::string& what, Ts&&... xs) {
  caf::scoped_actor self{system};
  Reply reply;
  std::string failure;
  self->request(role, role_patience, std::forward<Ts>(xs)...)
      .receive([&](Reply& answer) { reply = std::move(answer); }, [&](caf::error& error) { failure = system.render(error); });
  if (!failure.empty()) throw Error("step 3: " + what + ": " + failure);
  return reply;
}

/// Everything the evaluation needs, built once. The policy generates here (it is this
/// process's hybrid engine); the reference and the reward score through their actors,
/// wherever they run.
struct Evaluator {
  const Step3Config& config;
  engine::HybridEngine& hybrid;
  caf::actor_system& system;
  const StepThreeRoles& roles;
  TicketStore& store;
  std::shared_ptr<rl::RewardFunction> gold;
  const models::Tokenizer& tokenizer;
  const data::PhaseDataset& prompts;
  int64_t pad_id;

  /// Greedy answers, or (sampled) answers drawn as the rollouts are, with a fixed seed so
  /// that before and after see the same random stream.
  PolicyEvaluation run(bool sampled = false) const {
    // Rank 0 evaluates alone, with its whole weights (ZeRO 0-2 keeps them whole): the
    // other ranks of a tensor-parallel generation group are not asked to join.
    const auto group = hybrid.tensor_parallel();
    struct Alone {
      engine::HybridEngine& hybrid;
      models::TensorParallelRank group;
      ~Alone() {
        if (group.world > 1) hybrid.set_tensor_parallel(group);
      }
    } alone{hybrid, group};
    if (group.world > 1) hybrid.set_tensor_parallel({});
    PolicyEvaluation result;
    double reward_sum = 0, gold_sum = 0, kl_sum = 0, length_sum = 0;
    auto greedy = config.generation;
    greedy.do_sample = sampled && config.generation.do_sample;
    greedy.seed = config.seed + 7919;
    for (const auto& indices : eval_prompt_batches(prompts.size(), config)) {
      auto batch = data::make_step3_batch(prompts, indices, config.data.lengths.max_prompt_seq_len, pad_id);
      const auto device = config.device;
      auto out = hybrid.generate(batch.input_ids.to(device), batch.attention_mask.to(device), greedy);
      auto rollouts = TicketList{{store.publish(
          {{"sequences", out.sequences},
           {"attention_mask", out.attention_mask},
           {"prompt_length", torch::full({out.sequences.size(0)}, out.prompt_length, torch::kLong)}})}};
      auto exp = rl::Experience::from_generation(out.sequences.slice(1, 0, out.prompt_length), out.sequences,
                                                 out.attention_mask);
      exp.logprobs = hybrid.score_logprobs(out.sequences, out.attention_mask);
      auto ref_tickets = ask<TicketList>(system, roles.reference, "evaluation: reference.score", score_atom::value, rollouts);
      auto reward_tickets = ask<TicketList>(system, roles.reward, "evaluation: reward.score", score_atom::value, rollouts);
      exp.ref_logprobs = fetch_all(store, ref_tickets).at("ref_logprobs").to(exp.logprobs.device());
      exp.reward_score = fetch_all(store, reward_tickets).at("reward_score").to(exp.logprobs.device());
      for (const auto* list : {&rollouts, &ref_tickets, &reward_tickets})
        for (const auto& ticket : list->tickets) store.release(ticket);
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

  // --- where the roles run -------------------------------------------------------------
  Step3Placement placement;
  if (!config.topology.empty()) {
    Step3Models models{config.actor_model, config.critic_model,
                       config.reward_function.empty() ? (config.reward_model.empty() ? config.critic_model : config.reward_model)
                                                      : std::filesystem::path()};
    placement::NodeResources machine = placement::detect_local_node("local");
    if (!config.cluster.empty()) {
      const auto described = placement::ClusterResources::load(config.cluster.string());
      if (described.nodes().size() != 1)
        throw Error(config.cluster.string() + ": step 3 starts its workers on this machine; describe one node, not " +
                    std::to_string(described.nodes().size()));
      machine = described.nodes().front();
    }
    placement = place_step3_roles(placement::load_topology(config.topology), models, machine);
    std::clog << placement.plan_text;
  }

  const auto tokenizer_dir = config.data.tokenizer_dir.empty() ? config.actor_model : config.data.tokenizer_dir;
  std::shared_ptr<const models::Tokenizer> tokenizer = models::load_tokenizer(tokenizer_dir);
  const int64_t pad_id = data::pad_token_id(*tokenizer);
  auto generation = config.generation;
  generation.pad_token_id = pad_id;
  if (generation.eos_token_ids.empty() && tokenizer->eos_token_id())
    generation.eos_token_ids = {*tokenizer->eos_token_id()};

  auto phase = data::load_phase_data(config.data, 3);
  if (phase.train.size() == 0) throw Error("step 3: no training prompts (check --data_path, --data_split and --max_prompt_seq_len)");

  const bool mixture = !config.unsupervised_data.empty() && config.unsup_coef > 0;
  std::shared_ptr<rl::RewardFunction> gold;
  if (!config.eval_function.empty()) gold = rl::RewardFunctionRegistry::global().create(config.eval_function);

  // Per device, as DeepSpeed-Chat counts it: each actor rank generates this many prompts.
  const int actor_ranks = placement.actor_ranks;
  const int64_t rows_per_cycle = config.generation_batch_size * config.generation_batches * actor_ranks;
  data::SamplerOptions sampler;
  sampler.seed = config.seed;
  const int64_t cycles_per_epoch =
      static_cast<int64_t>(data::distributed_batches(phase.train.size(), rows_per_cycle, sampler).size());
  int64_t total_cycles = config.epochs * cycles_per_epoch;
  if (config.max_steps > 0) total_cycles = std::min(total_cycles, config.max_steps);
  const int64_t rows = rows_per_cycle * algorithm->samples_per_prompt();

  // Data-parallel roles meet at a rendezvous this process hosts, one per group: on
  // loopback, or where --listen lets workers of other machines in.
  std::map<std::string, std::unique_ptr<Rendezvous>> rendezvous;
  auto join_group = [&](RoleSpec& spec, int ranks, int zero_stage) {
    if (ranks <= 1) return;
    const auto host = config.listen.empty() ? std::string("127.0.0.1") : parse_host_port(config.listen, "--listen", true).host;
    auto& point = rendezvous[spec.id.role];
    point = std::make_unique<Rendezvous>(host);
    spec.options["dp_rendezvous"] = point->address();
    spec.options["dp_collectives"] = collectives_name(config.dp_collectives);
    spec.options["zero_stage"] = std::to_string(zero_stage);
    spec.id.world = ranks;  // rank 0 here; WorkerProcesses numbers the others
    if (zero_stage > 2 && spec.id.role != "reward")  // a frozen reward model partitions for real
      std::clog << "step3: " << spec.id.role << " zero_stage " << zero_stage
                << ": its ranks partition optimizer state and gradients (ZeRO stage 2); parameters stay whole on "
                   "every rank\n";
  };
  // A data-parallel rank trains on its share of the rows, so it takes fewer steps.
  auto rows_per_rank = [&](int ranks) { return (rows + ranks - 1) / ranks; };

  // --- the actor: rank 0 in this process ----------------------------------------------
  auto actor_spec = actor_role_spec(config, generation,
                                    planned_updates(total_cycles, rows_per_rank(actor_ranks), config, mixture ? 1 : 0));
  join_group(actor_spec, actor_ranks, placement.actor_zero_stage);
  const int generation_tp = config.inference_tp_size > 0 ? config.inference_tp_size : placement.actor_inference_tp;
  if (actor_ranks % generation_tp != 0)
    throw Error("step 3: --inference_tp_size " + std::to_string(generation_tp) + " does not divide the actor's " +
                std::to_string(actor_ranks) + " rank(s) (roles.actor.devices in --topology)");
  actor_spec.options["inference_tp_size"] = std::to_string(generation_tp);
  auto policy_role = make_policy_role(actor_spec);
  std::shared_ptr<engine::HybridEngine> hybrid(policy_role, &policy_role->hybrid());  // lives as long as the role
  auto actor = hybrid->model();

  // --- the actor runtime: the other roles here or in worker processes -----------------
  SystemConfig system_config;
  caf::actor_system system{system_config};
  const bool separated = placement.worker_processes() > 0;
  std::shared_ptr<UcxTicketStore> ucx_store;
  std::shared_ptr<TicketStore> store;
  if (separated) store = ucx_store = std::make_shared<UcxTicketStore>();
  else store = std::make_shared<InProcessTicketStore>();
  std::unique_ptr<WorkerProcesses> workers;
  // A lost worker ends pulls from it at once instead of at the transfer timeout.
  if (separated)
    workers = std::make_unique<WorkerProcesses>(system, config, placement,
                                                [ucx_store](const std::string& node) { ucx_store->mark_node_lost(node); });

  auto local_context = [&](const std::string& role, std::shared_ptr<RoleModel> model) {
    return RoleContext{RoleId{role, 0, placement.ranks(role)}, std::move(model), store};
  };
  const auto factories = step3_role_factories();
  auto local_model = [&](const RoleSpec& spec) { return factories.at(spec.factory)(spec); };
  std::vector<std::string> here{"actor"}, descriptions{policy_role->describe()};

  Step3Result result;
  StepThreeRoles roles;
  // The role actors end with this run even where a peer process still references one:
  // the actor system's destructor waits for every actor.
  struct StopRoles {
    const StepThreeRoles& roles;
    std::vector<caf::actor> ranks_here;  // rank 0 of data-parallel roles, behind their groups
    ~StopRoles() {
      std::vector<caf::actor> handles = ranks_here;
      for (const auto& handle : {caf::actor_cast<caf::actor>(roles.policy), caf::actor_cast<caf::actor>(roles.critic),
                                 caf::actor_cast<caf::actor>(roles.reference), caf::actor_cast<caf::actor>(roles.reward)})
        handles.push_back(handle);
      for (const auto& handle : handles)
        if (handle) caf::anon_send_exit(handle, caf::exit_reason::user_shutdown);
    }
  } stop_roles{roles, {}};
  // A role whose rank 0 runs here: alone, or first of its data-parallel ranks, the
  // others in worker processes, all behind one group handle.
  auto with_other_ranks = [&](auto here_rank, const RoleSpec& spec, auto group) {
    using Handle = decltype(here_rank);
    if (placement.ranks(spec.id.role) <= 1) return here_rank;
    auto ranks = workers->template spawn_ranks<Handle>(spec);
    ranks.insert(ranks.begin(), here_rank);
    stop_roles.ranks_here.push_back(caf::actor_cast<caf::actor>(here_rank));
    return group(system, std::move(ranks));
  };

  roles.policy = with_other_ranks(spawn_policy(system, local_context("actor", policy_role)), actor_spec, spawn_policy_group);
  if (placement.with_actor("reference")) {
    auto reference = std::make_shared<engine::ReferencePolicy>(actor, hybrid->model_mutex());
    if (config.offload_reference_model && !reference->offload_to(torch::kCPU))
      std::clog << "step3: --offload_reference_model: the reference shares the actor's weights; nothing to offload\n";
    result.reference_memory = reference->memory_summary();
    if (placement.ranks("reference") > 1) result.reference_memory += " (the same on every rank)";
    roles.reference = with_other_ranks(spawn_reference(system, local_context("reference", std::make_shared<ReferenceRole>(reference))),
                                       reference_role_spec(config), spawn_reference_group);
    here.push_back("reference");
  } else {
    // One-rank groups around remote roles: a lost worker fails the request at once.
    roles.reference = workers->spawn(reference_role_spec(config), spawn_reference_group);
    result.reference_memory = "reference: a frozen copy of the actor's initial weights in its worker process";
  }
  const bool has_critic = algorithm->roles().critic;
  const int critic_ranks = placement.ranks("critic");
  auto critic_spec = critic_role_spec(config, planned_updates(total_cycles, rows_per_rank(critic_ranks), config, 0));
  if (has_critic) join_group(critic_spec, critic_ranks, placement.critic_zero_stage);
  if (!has_critic) {
    auto none = std::make_shared<NoCriticRole>();
    descriptions.push_back(none->describe());
    roles.critic = spawn_critic(system, RoleContext{RoleId{"critic", 0, 1}, none, store});
    here.push_back("critic");
  } else if (placement.with_actor("critic")) {
    auto critic = local_model(critic_spec);
    descriptions.push_back(critic->describe());
    roles.critic = with_other_ranks(spawn_critic(system, local_context("critic", critic)), critic_spec, spawn_critic_group);
    here.push_back("critic");
  } else {
    roles.critic = workers->spawn(critic_spec, spawn_critic_group);
  }
  auto reward_spec = reward_role_spec(config);
  if (config.reward_function.empty() && placement.reward_zero_stage == 3)
    join_group(reward_spec, placement.ranks("reward"), placement.reward_zero_stage);
  if (placement.with_actor("reward")) {
    auto reward = local_model(reward_spec);
    descriptions.push_back(reward->describe());
    roles.reward = with_other_ranks(spawn_reward(system, local_context("reward", reward)), reward_spec, spawn_reward_group);
    here.push_back("reward");
  } else {
    roles.reward = workers->spawn(reward_spec, spawn_reward_group);
  }
  auto join = [](const std::vector<std::string>& names, const char* separator) {
    std::string text;
    for (const auto& name : names) text += (text.empty() ? "" : separator) + name;
    return text;
  };
  result.placement = join(here, "+") + " in this process";
  if (workers)
    for (const auto& text : workers->descriptions()) result.placement += "; " + text;
  descriptions.push_back(result.reference_memory);
  std::clog << "step3: " << join(descriptions, "; ") << "\nstep3: placement: " << result.placement
            << (separated ? " (batches between processes over UCX)" : "") << "\n";

  Evaluator evaluator{config, *hybrid, system, roles, *store, gold, *tokenizer, phase.eval, pad_id};
  if (config.eval_prompts > 0) {
    result.before = evaluator.run();
    result.before_sampled = evaluator.run(true);
    log_metrics(config, "eval", 0, evaluation_metrics(result.before, result.before_sampled));
  }

  std::map<std::string, double> experience_values;
  auto make_experience = [&](const ExperienceTickets& tickets, int64_t) {
    auto generated = fetch_all(*store, tickets.sequences);
    const auto& sequences = generated.at("sequences");
    const int64_t prompt_length = generated.at("prompt_length")[0].item<int64_t>();
    auto exp = rl::Experience::from_generation(sequences.slice(1, 0, prompt_length), sequences,
                                               generated.at("attention_mask"));
    exp.logprobs = fetch_all(*store, tickets.logprobs).at("logprobs");
    exp.ref_logprobs = fetch_all(*store, tickets.ref_logprobs).at("ref_logprobs").to(exp.logprobs.device());
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
      // A last batch too short to give every actor rank a prompt is left out.
      if (static_cast<int64_t>(indices.size()) < actor_ranks) continue;
      const auto cycle_started = Clock::now();
      auto prompts = data::make_step3_batch(phase.train, indices, config.data.lengths.max_prompt_seq_len, pad_id);
      auto prompt_ticket = store->publish({{"input_ids", prompts.input_ids}, {"attention_mask", prompts.attention_mask}});
      const size_t generations_before = hybrid->timing_history().size();
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

      // This cycle's generate() calls (several with --generation_batches > 1).
      engine::SwitchTimings timings;
      const auto& history = hybrid->timing_history();
      for (size_t i = generations_before; i < history.size(); ++i) {
        timings.tensor_parallel = history[i].tensor_parallel;
        timings.enter_seconds += history[i].enter_seconds;
        timings.generate_seconds += history[i].generate_seconds;
        timings.leave_seconds += history[i].leave_seconds;
      }
      std::map<std::string, double> values = experience_values;
      for (const auto& [name, value] : cycle_result.policy.values) values[name] = value;
      for (const auto& [name, value] : cycle_result.critic.values) values[name] = value;
      const double cycle_seconds = seconds_since(cycle_started);
      values["generate_seconds"] = timings.generate_seconds;
      values["generation_tensor_parallel"] = timings.tensor_parallel;  // ranks of the actor's generation group
      values["switch_seconds"] = timings.switch_seconds();  // into the inference layout and back
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
    if (has_critic)
      ask<caf::ok_atom>(system, roles.critic, "saving the critic", save_atom::value,
                        std::filesystem::absolute(config.output_dir / "critic").string());
  }
  if (ucx_store) result.remote_fetches = static_cast<int64_t>(ucx_store->pulled());
  result.seconds = seconds_since(started);
  return result;
}

}  // namespace troupe::actors
