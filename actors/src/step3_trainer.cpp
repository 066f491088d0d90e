/// run_step3: plan -> spawn -> loop -> save. Each cycle is the architecture's six
/// steps: the actor generates, the actor, reference, critic and reward score the
/// sequences, the algorithm turns the scores into advantages, the actor and critic train.
#include <troupe/actors/step3_trainer.hpp>

#include <chrono>
#include <thread>
#include <cmath>

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/actors/controller.hpp>
#include <troupe/actors/experience_stage.hpp>
#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>
#include <troupe/data/collate.hpp>
#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/engine/metrics_log.hpp>
#include <troupe/engine/progress.hpp>
#include <troupe/engine/tensorboard_writer.hpp>

#include "async_rollout.hpp"
#include "step3_checkpoint.hpp"
#include "step3_evaluation.hpp"
#include <troupe/actors/step3_plan.hpp>
#include <troupe/actors/step3_runtime.hpp>

namespace troupe::actors {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

void log_metrics(const Step3Config& config, const std::string& kind, int64_t step,
                 const std::map<std::string, double>& values) {
  if (config.metrics) config.metrics->log("step3/" + kind, step, values);
  if (config.tensorboard) {
    for (const auto& [name, value] : values)
      config.tensorboard->add_scalar("step3/" + kind + "/" + name, static_cast<float>(value), step);
    config.tensorboard->flush();  // on disk before any checkpoint that counts it
  }
}

/// The generation timings of the hybrid engine's generate() calls since `first`
/// (several in a cycle with --generation_batches > 1).
engine::SwitchTimings generation_timings(const engine::HybridEngine& hybrid, size_t first) {
  engine::SwitchTimings timings;
  const auto& history = hybrid.timing_history();
  for (size_t i = first; i < history.size(); ++i) {
    timings.tensor_parallel = history[i].tensor_parallel;
    timings.enter_seconds += history[i].enter_seconds;
    timings.generate_seconds += history[i].generate_seconds;
    timings.leave_seconds += history[i].leave_seconds;
  }
  return timings;
}

/// One metrics row of a cycle: the experience stage's, the actor's and the critic's,
/// and the cycle's timings. Throws when a value is not finite.
std::map<std::string, double> cycle_metrics(const CycleResult& cycle, const engine::SwitchTimings& timings,
                                            double seconds, int64_t tokens, int64_t step) {
  std::map<std::string, double> values = cycle.stage.metrics;
  for (const auto& [name, value] : cycle.policy.values) values[name] = value;
  for (const auto& [name, value] : cycle.critic.values) values[name] = value;
  values["generate_seconds"] = timings.generate_seconds;
  values["generation_tensor_parallel"] = timings.tensor_parallel;  // ranks of the actor's generation group
  values["switch_seconds"] = timings.switch_seconds();             // into the inference layout and back
  values["cycle_seconds"] = seconds;
  values["tokens_per_second"] = static_cast<double>(tokens) / seconds;
  for (const auto& [name, value] : values)
    if (!std::isfinite(value)) throw Error("step 3: " + name + " is " + std::to_string(value) + " at cycle " + std::to_string(step));
  return values;
}

/// Sequence tokens the cycle processed.
int64_t cycle_tokens(TicketStore& store, const CycleResult& cycle) {
  if (cycle.experience.sequences.tickets.empty()) return 0;
  return fetch_all(store, cycle.experience.sequences).at(keys::attention_mask).sum().item<int64_t>();
}

}  // namespace

namespace {

/// One run of the roles, from the start or from the last checkpoint (`resume`). Returns
/// false, with `lost` naming what went down, when a worker process was lost; rethrows
/// any other error. `restart` is a metrics row to log once the metrics are cut back.
bool run_attempt(const Step3Config& config, bool resume, const std::map<std::string, double>& restart,
                 Step3Result& result, std::string& lost) {
  torch::manual_seed(config.seed);
  const auto plan = plan_step3(config);
  check_async_rollout(config, plan);  // before any model is loaded
  Step3Runtime runtime(config, plan);
  auto& store = *runtime.store();
  result.placement = runtime.placement();
  result.reference_memory = runtime.reference_memory();

  Step3Evaluator evaluator(config, plan, runtime);
  auto evaluate = [&](int64_t step, PolicyEvaluation* greedy, PolicyEvaluation* sampled) {
    const auto g = evaluator.run(), s = evaluator.run(/*sampled=*/true);
    log_metrics(config, "eval", step, evaluation_metrics(g, s));
    if (greedy) *greedy = g, *sampled = s;
  };
  // A resumed run continues after the checkpoint's cycle, with the metrics rows written
  // after it cut off (they are written again) and the evaluation before training kept.
  const auto resumed = resume ? restore_step3_checkpoint(config, plan, runtime) : std::nullopt;
  if (resume && config.metrics) config.metrics->cut_to(resumed ? resumed->metrics_bytes : 0);
  if (resume && config.tensorboard) config.tensorboard->purge_from(resumed ? resumed->cycle + 1 : 0);
  if (!restart.empty()) log_metrics(config, "restart", resumed ? resumed->cycle : 0, restart);
  if (resumed) {
    result.before = resumed->before;
    result.before_sampled = resumed->before_sampled;
  } else if (config.eval_prompts > 0) {
    evaluate(0, &result.before, &result.before_sampled);
  }
  auto checkpoint = [&](int64_t cycle, bool finished) {
    Step3Progress progress{cycle, 0, finished, result.before, result.before_sampled, result.after, result.after_sampled};
    if (config.metrics) progress.metrics_bytes = static_cast<int64_t>(std::filesystem::file_size(config.metrics->path()));
    write_step3_checkpoint(config, plan, runtime, progress);
  };

  int64_t cycle = 0;
  try {
  auto stage = std::make_shared<AlgorithmStage>(plan.algorithm, runtime.store());
  stage->set_rollout_is_truncation(config.rollout_is_truncation);
  Controller controller(runtime.system(), runtime.roles(), stage);
  // All four roles in this process: one at a time, so one role's activations exist at once.
  controller.set_roles_in_turn(plan.placement.worker_processes() == 0);
  engine::ProgressReporter progress("step3", plan.total_cycles);
  // The cycles' prompt batches in order. A last batch too short to give every actor rank
  // a prompt is left out.
  std::vector<std::vector<int64_t>> batches;
  for (int64_t epoch = 0; epoch < config.epochs && static_cast<int64_t>(batches.size()) < plan.total_cycles; ++epoch)
    for (auto& indices : plan.cycle_batches(epoch)) {
      if (static_cast<int64_t>(batches.size()) >= plan.total_cycles) break;
      if (static_cast<int64_t>(indices.size()) >= plan.placement.actor_ranks) batches.push_back(std::move(indices));
    }
  auto prompt_batch = [&](size_t index) -> TensorBatch {
    auto prompts = data::make_step3_batch(plan.prompts.train, batches[index], config.data.lengths.max_prompt_seq_len, plan.pad_id);
    return {{keys::input_ids, prompts.input_ids}, {keys::attention_mask, prompts.attention_mask}};
  };
  // --async_rollout: the copy starts from the actor's weights (version 0) and generation
  // counter, after the evaluation before training, as the actor's rollouts would.
  std::unique_ptr<AsyncRollout> rollout;
  if (config.async_rollout)
    rollout = std::make_unique<AsyncRollout>(runtime.rollout_role(), runtime.policy_role(), config.rollout_is_truncation > 0);
  if (resumed) cycle = std::min<int64_t>(resumed->cycle, static_cast<int64_t>(batches.size()));  // done before the checkpoint
  for (auto index = static_cast<size_t>(cycle); index < batches.size(); ++index) {
    const auto cycle_started = Clock::now();
    const size_t generations_before = runtime.hybrid().timing_history().size();
    auto prompts = prompt_batch(index);
    // The weights' version is the number of cycles trained: the policy that trains this
    // cycle is at `cycle`; the rollouts' version comes with them.
    std::map<std::string, double> rollout_values;
    CycleResult done;
    engine::SwitchTimings timings;
    if (!rollout) {
      // generate -> score x4 -> algorithm -> train actor and critic
      done = controller.run_cycle(TicketList{{store.publish(prompts)}}, cycle);
      timings = generation_timings(runtime.hybrid(), generations_before);
      rollout_values["rollout_weights_version"] = static_cast<double>(cycle);
    } else {
      if (!rollout->in_flight()) rollout->start(prompts);  // the first cycle: nothing generated ahead
      const auto wait_started = Clock::now();
      auto generated = rollout->wait();
      const double waited = seconds_since(wait_started);
      // The copy takes the weights of every update so far, then generates the next
      // cycle's rollouts while this one scores and trains (one update behind it).
      const double sync_seconds = rollout->version() == cycle ? 0.0 : rollout->sync_weights(cycle);
      if (index + 1 < batches.size()) rollout->start(prompt_batch(index + 1));
      const int64_t version = generated.batch.at(keys::rollout_weights_version)[0].item<int64_t>();
      if (cycle - version > 1 || version > cycle)
        throw Error("--async_rollout: cycle " + std::to_string(cycle + 1) + " got rollouts of weights version " +
                    std::to_string(version) + " to train weights version " + std::to_string(cycle));
      timings = generated.timings;
      rollout_values["rollout_weights_version"] = static_cast<double>(version);
      rollout_values["weight_sync_seconds"] = sync_seconds;
      rollout_values["rollout_wait_seconds"] = waited;  // generation the training did not hide
      rollout_values["rollout_overlapped_seconds"] = std::max(0.0, generated.seconds - waited);
      ExperienceTickets experience;
      experience.prompts = TicketList{{store.publish(prompts)}};
      experience.sequences = TicketList{{store.publish(std::move(generated.batch))}};
      done = controller.run_cycle_generated(experience, cycle);
    }
    rollout_values["policy_weights_version"] = static_cast<double>(cycle);
    rollout_values["rollout_staleness"] = static_cast<double>(cycle) - rollout_values["rollout_weights_version"];
    ++cycle;

    const int64_t tokens = cycle_tokens(store, done);
    release_tickets(store, done.experience);  // every batch of the cycle is consumed
    release_tickets(store, done.stage.training);
    auto values = cycle_metrics(done, timings, seconds_since(cycle_started), tokens, cycle);
    for (const auto& [name, value] : rollout_values) values[name] = value;
    log_metrics(config, "train", cycle, values);
    result.generate_seconds += timings.generate_seconds;
    result.tokens += tokens;
    progress.update(cycle, values.count("actor_loss") ? values["actor_loss"] : 0.0, tokens);
    result.last_metrics = std::move(values);
    if (config.eval_interval > 0 && cycle % config.eval_interval == 0 && cycle < plan.total_cycles)
      evaluate(cycle, nullptr, nullptr);
    if (config.save_interval > 0 && cycle % config.save_interval == 0 && cycle < plan.total_cycles) checkpoint(cycle, false);
  }
  progress.finish();
  result.cycles = cycle;
  // The last checkpoint follows the evaluation after training, so that a run resumed
  // from it (killed while saving) neither repeats the evaluation nor logs it twice.
  if (resumed && resumed->finished) {
    result.after = resumed->after;
    result.after_sampled = resumed->after_sampled;
  } else {
    if (config.eval_prompts > 0) evaluate(cycle, &result.after, &result.after_sampled);
    if (config.save_interval > 0) checkpoint(cycle, true);
  }
  if (!config.output_dir.empty()) runtime.save(config.output_dir);
  } catch (const std::exception& e) {
    // A worker's death reaches the loop as a failed request; the cluster's report of the
    // lost node may come a moment later.
    for (int i = 0; i < 40 && runtime.lost_nodes().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (runtime.lost_nodes().empty()) throw;
    lost = runtime.lost_nodes().front() + " at cycle " + std::to_string(cycle + 1) + " (" + e.what() + ")";
    result.cycles = cycle;
    return false;
  }
  result.remote_fetches += runtime.remote_fetches();
  return true;
}

}  // namespace

Step3Result run_step3(const Step3Config& config) {
  const auto started = Clock::now();
  Step3Result result;
  bool resume = config.resume;
  std::map<std::string, double> restart;  // the row that marks a restart in the metrics
  auto attempt = config;
  for (int64_t restarts = 0;; ++restarts) {
    std::string lost;
    if (run_attempt(attempt, resume, restart, result, lost)) break;
    if (restarts >= config.max_restarts)
      throw Error("step 3: lost worker " + lost + (config.max_restarts > 0 ? "; --max_restarts " + std::to_string(config.max_restarts) + " used up" : ""));
    log::warn("step3: restart ", restarts + 1, " of ", config.max_restarts, ": lost worker ", lost,
              "; every role reloads from the last checkpoint",
              config.listen.empty() ? std::string()
                                    : " once the worker processes joined again (up to --rejoin_timeout " +
                                          std::to_string(static_cast<int64_t>(config.rejoin_timeout_seconds)) + " s)");
    restart = {{"restart", static_cast<double>(restarts + 1)}, {"cycles_done_when_lost", static_cast<double>(result.cycles)}};
    resume = true;
    attempt.listen_wait_seconds = config.rejoin_timeout_seconds;  // workers that joined by hand come back
  }
  result.seconds = seconds_since(started);
  return result;
}

}  // namespace troupe::actors
