#include <troupe/engine/training_loop.hpp>

#include <chrono>
#include <cmath>
#include <optional>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>
#include <troupe/engine/checkpoint.hpp>
#include <troupe/engine/metrics_log.hpp>
#include <troupe/engine/progress.hpp>
#include <troupe/engine/tensorboard_writer.hpp>
#include <troupe/engine/zero3.hpp>
#include <troupe/models/chat_format.hpp>
#include <troupe/models/peft_adapter.hpp>
#include <troupe/models/pretrained.hpp>

namespace troupe::engine {

std::filesystem::path checkpoint_dir(const std::filesystem::path& output_dir, int rank, int world) {
  const auto dir = output_dir / "checkpoint";
  return world > 1 ? dir / ("rank" + std::to_string(rank)) : dir;
}

namespace {

void record(const PhaseOptions& options, const std::string& kind, int64_t step, const MetricValues& values) {
  if (options.metrics) options.metrics->log(options.phase + "/" + kind, step, values);
  if (options.tensorboard)
    for (const auto& [name, value] : values)
      options.tensorboard->add_scalar(options.phase + "/" + kind + "/" + name, static_cast<float>(value), step);
}

std::string describe(const MetricValues& values) {
  std::string text;
  for (const auto& [name, value] : values) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%s%s %.4g", text.empty() ? "" : ", ", name.c_str(), value);
    text += buffer;
  }
  return text;
}

/// Where the phase starts: the checkpoint's position with --resume when there is one
/// (every rank's, of the same step, written by the same ranks and ZeRO stage), else the
/// beginning.
TrainingPosition resume_position(TrainEngine& engine, const PhaseOptions& options,
                                 const std::filesystem::path& checkpoint) {
  if (options.world > 1 && !options.min_over_ranks)
    throw Error(options.phase + ": " + std::to_string(options.world) + " ranks but no min_over_ranks");
  const auto max_over_ranks = [&](int64_t value) { return -options.min_over_ranks(-value); };
  bool have_checkpoint = options.resume && has_training_checkpoint(checkpoint);
  if (options.world > 1 && options.resume) {
    const int64_t mine = have_checkpoint ? 1 : 0;
    have_checkpoint = options.min_over_ranks(mine) == 1;
    if (!have_checkpoint && max_over_ranks(mine) == 1)  // another --num_processes, or a run killed while saving
      throw Error("--resume: only some of the " + std::to_string(options.world) + " ranks have a checkpoint in " +
                  checkpoint_dir(options.output_dir).string() + " (rank " + std::to_string(options.rank) +
                  (mine ? " has one" : " has none") + "): resume with the --num_processes that wrote them");
  }
  if (!have_checkpoint) {
    if (options.resume)
      log::warn(options.phase, ": --resume given but ", checkpoint.string(), options.world > 1 ? " (or another rank's)" : "",
                " holds no checkpoint; starting fresh");
    return {};
  }
  nlohmann::json extra;
  const auto position = load_training_checkpoint(engine, checkpoint, &extra);
  const int ranks = extra.value("ranks", 1), stage = extra.value("zero_stage", 0);
  if (ranks != options.world || stage != options.zero_stage)
    throw Error("--resume: " + checkpoint.string() + " was written by " + std::to_string(ranks) + " rank(s) at ZeRO stage " +
                std::to_string(stage) + "; this run has " + std::to_string(options.world) + " at stage " +
                std::to_string(options.zero_stage) + " (a checkpoint cannot be resharded yet: resume with the same "
                "--num_processes and --zero_stage)");
  if (options.world > 1) {
    const int64_t step = engine.global_step();
    const int64_t lowest = options.min_over_ranks(step), highest = max_over_ranks(step);
    if (lowest != highest)  // killed while the ranks were saving
      throw Error("--resume: the ranks' checkpoints in " + checkpoint_dir(options.output_dir).string() +
                  " are of different steps (" + std::to_string(lowest) + " to " + std::to_string(highest) +
                  "): the run was stopped while saving; start it afresh");
  }
  log::info(options.phase, ": resumed from ", checkpoint.string(), " at step ", engine.global_step(), " (epoch ",
            position.epoch, ", batch ", position.batch, ")");
  return position;
}

}  // namespace

PhaseResult run_phase(TrainEngine& engine, const PhaseTask& task, const PhaseOptions& options) {
  if (task.batches_per_epoch <= 0)
    throw Error(options.phase + ": no training batches (is the training split empty? check --data_path and --data_split)");
  const auto started = std::chrono::steady_clock::now();
  PhaseResult result;
  const auto checkpoint = checkpoint_dir(options.output_dir, options.rank, options.world);
  const TrainingPosition position = resume_position(engine, options, checkpoint);

  auto evaluate = [&] {
    MetricValues values;
    engine.evaluate([&](models::CausalLMImpl& model) { values = task.evaluate(model); });
    record(options, "eval", engine.global_step(), values);
    log::info(options.phase, ": eval at step ", engine.global_step(), ": ", describe(values));
    return values;
  };
  if (options.evaluate_first && task.evaluate && engine.global_step() == 0) result.initial_eval = evaluate();

  const int64_t accumulation = engine.options().gradient_accumulation_steps;
  const int64_t total_steps = options.epochs * task.batches_per_epoch / accumulation;
  const int64_t step_limit = options.max_steps > 0 ? std::min(options.max_steps, total_steps) : total_steps;
  ProgressReporter progress(options.phase, step_limit);
  auto save = [&](const TrainingPosition& at) {
    save_training_checkpoint(engine, options.tokenizer_dir, checkpoint, at,
                             nlohmann::json{{"ranks", options.world}, {"zero_stage", options.zero_stage}});
    log::debug(options.phase, ": checkpoint of step ", engine.global_step(), " (resumes at epoch ", at.epoch, ", batch ",
               at.batch, ") saved in ", checkpoint.string());
  };

  double window_loss = 0;
  int64_t window_tokens = 0, window_batches = 0;
  MetricValues window_metrics;  // sums of the task's own metrics over the window
  bool stopped = false;
  for (int64_t epoch = position.epoch; epoch < options.epochs && !stopped; ++epoch) {
    for (int64_t batch = epoch == position.epoch ? position.batch : 0; batch < task.batches_per_epoch; ++batch) {
      int64_t tokens = 0;
      auto step = engine.micro_step([&](models::CausalLMImpl& model) {
        auto out = task.loss(model, epoch, batch);
        tokens = out.tokens;
        for (const auto& [name, value] : out.metrics) window_metrics[name] += value;
        return out.loss;
      });
      window_loss += step.loss;
      window_tokens += tokens;
      ++window_batches;
      result.tokens += tokens;
      if (!step.optimizer_stepped) continue;

      const int64_t global = engine.global_step();
      const double loss = window_loss / static_cast<double>(window_batches);
      MetricValues train_values{{"loss", loss}, {"lr", engine.learning_rate()}, {"grad_norm", step.grad_norm},
                                {"tokens", static_cast<double>(window_tokens)}};
      for (const auto& [name, sum] : window_metrics) train_values[name] = sum / static_cast<double>(window_batches);
      record(options, "train", global, train_values);
      progress.update(global, loss, window_tokens);
      window_loss = 0;
      window_tokens = 0;
      window_batches = 0;
      window_metrics.clear();
      const TrainingPosition next = batch + 1 < task.batches_per_epoch ? TrainingPosition{epoch, batch + 1}
                                                                      : TrainingPosition{epoch + 1, 0};
      if (options.eval_interval > 0 && global % options.eval_interval == 0 && global < step_limit) evaluate();
      if (options.save_interval > 0 && global % options.save_interval == 0) save(next);
      if (global >= step_limit) {
        stopped = global < total_steps;
        if (stopped) save(next);
        break;
      }
    }
  }
  progress.finish();
  result.finished = !stopped;
  if (task.evaluate) result.final_eval = evaluate();
  if (result.finished) {
    save(TrainingPosition{options.epochs, 0});
    // Under ZeRO stage 3 every rank takes part in gathering the whole model; rank 0 writes it.
    std::optional<Zero3Partition::FullParameters> whole;
    if (auto* zero3 = engine.zero3()) whole.emplace(zero3->gather_full_parameters());
    if (options.rank == 0) {
      // The Hugging Face files go straight into output_dir, as DeepSpeed-Chat saves, so the
      // next step's --model_name_or_path is the output_dir; each file is written atomically.
      models::save_pretrained(*engine.model(), options.output_dir);
      copy_tokenizer_files(options.tokenizer_dir, options.output_dir);
      // The prompt format it trained in, as the chat_template of tokenizer_config.json.
      if (!options.tokenizer_dir.empty()) models::write_chat_template(options.output_dir, models::ChatFormat::Troupe);
      // A LoRA run over a frozen base: the adapters on their own too, as peft loads them.
      if (models::peft_exportable(*engine.model()))
        models::save_peft_adapter(*engine.model(), options.output_dir / models::kPeftAdapterDir);
    }
  }
  result.optimizer_steps = engine.global_step();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace troupe::engine
