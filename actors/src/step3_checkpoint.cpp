#include "step3_checkpoint.hpp"

#include <cmath>
#include <limits>
#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <troupe/actors/messages.hpp>
#include <troupe/actors/role_request.hpp>
#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>
#include <troupe/common/files.hpp>

namespace troupe::actors {
namespace fs = std::filesystem;
namespace {

constexpr int kFormat = 1;

fs::path checkpoint_dir(const Step3Config& config) { return config.output_dir / "checkpoint"; }

/// fsync every file and folder under `dir`, so that the rename that publishes it never
/// points at data still only in the page cache.
void sync_tree(const fs::path& dir) {
  auto sync = [](const fs::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw Error(path.string() + ": cannot open to sync");
    const int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) throw Error(path.string() + ": fsync failed");
  };
  for (const auto& entry : fs::recursive_directory_iterator(dir)) sync(entry.path());
  sync(dir);
}

/// NaN (no score) travels as null: JSON has no NaN.
nlohmann::json number(double value) { return std::isnan(value) ? nlohmann::json(nullptr) : nlohmann::json(value); }
double number(const nlohmann::json& value) {
  return value.is_null() ? std::numeric_limits<double>::quiet_NaN() : value.get<double>();
}

nlohmann::json to_json(const PolicyEvaluation& e) {
  return {{"prompts", e.prompts},
          {"reward_score", number(e.reward_score)},
          {"gold_score", number(e.gold_score)},
          {"kl_per_answer", number(e.kl_per_answer)},
          {"answer_length", e.answer_length},
          {"examples", e.examples}};
}

PolicyEvaluation evaluation_from_json(const nlohmann::json& j) {
  PolicyEvaluation e;
  e.prompts = j.at("prompts").get<int64_t>();
  e.reward_score = number(j.at("reward_score"));
  e.gold_score = number(j.at("gold_score"));
  e.kl_per_answer = number(j.at("kl_per_answer"));
  e.answer_length = j.at("answer_length").get<double>();
  e.examples = j.at("examples").get<std::vector<std::pair<std::string, std::string>>>();
  return e;
}

/// What must be equal for a resume to continue the same run.
nlohmann::json run_shape(const Step3Config& config, const Step3Plan& plan) {
  return {{"total_cycles", plan.total_cycles},
          {"actor_ranks", plan.placement.actor_ranks},
          {"critic_ranks", plan.placement.ranks("critic")},
          {"worker_processes", plan.placement.worker_processes()},
          {"seed", config.seed},
          {"algorithm", config.algorithm}};
}

void ask_roles(Step3Runtime& runtime, const fs::path& dir, bool write) {
  const auto path = fs::absolute(dir).string();
  const auto& roles = runtime.roles();
  if (write) {
    ask<caf::ok_atom>(runtime.system(), roles.policy, "checkpointing the actor", checkpoint_atom::value, path);
    if (runtime.has_critic())
      ask<caf::ok_atom>(runtime.system(), roles.critic, "checkpointing the critic", checkpoint_atom::value, path);
  } else {
    ask<caf::ok_atom>(runtime.system(), roles.policy, "restoring the actor", restore_atom::value, path);
    if (runtime.has_critic())
      ask<caf::ok_atom>(runtime.system(), roles.critic, "restoring the critic", restore_atom::value, path);
  }
}

}  // namespace

void write_step3_checkpoint(const Step3Config& config, const Step3Plan& plan, Step3Runtime& runtime,
                            const Step3Progress& progress) {
  const auto dir = checkpoint_dir(config);
  auto tmp = dir;
  tmp += ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  ask_roles(runtime, tmp, /*write=*/true);
  nlohmann::json state{{"format", kFormat},
                       {"cycle", progress.cycle},
                       {"metrics_bytes", progress.metrics_bytes},
                       {"algorithm_state", plan.algorithm->state()},
                       {"finished", progress.finished},
                       {"before", to_json(progress.before)},
                       {"before_sampled", to_json(progress.before_sampled)},
                       {"after", to_json(progress.after)},
                       {"after_sampled", to_json(progress.after_sampled)},
                       {"run", run_shape(config, plan)}};
  // state.json last: a checkpoint folder without it is incomplete.
  // The examples are cut at token boundaries, which may split a UTF-8 character.
  write_file_atomically(tmp / "state.json", state.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  sync_tree(tmp);
  // checkpoint -> checkpoint.old, checkpoint.tmp -> checkpoint, then the old one goes.
  auto old = dir;
  old += ".old";
  fs::remove_all(old);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fs::remove_all(old);
  log::debug("step3: checkpoint after cycle ", progress.cycle, " saved in ", dir.string());
}

std::optional<Step3Progress> restore_step3_checkpoint(const Step3Config& config, const Step3Plan& plan,
                                                      Step3Runtime& runtime) {
  auto dir = checkpoint_dir(config);
  auto old = dir;
  old += ".old";
  // Killed between the two renames: the previous complete checkpoint is the .old one.
  if (!fs::exists(dir / "state.json") && fs::exists(old / "state.json")) dir = old;
  if (!fs::exists(dir / "state.json")) {
    log::warn("step3: --resume: no complete checkpoint in ", checkpoint_dir(config).string(),
              "; starting from the beginning");
    return std::nullopt;
  }
  const auto state_path = dir / "state.json";
  Step3Progress progress;
  try {
    const auto state = nlohmann::json::parse(read_file(state_path));
    if (state.at("format").get<int>() != kFormat)
      throw Error("format " + state.at("format").dump() + ", this troupe reads " + std::to_string(kFormat));
    const auto saved = state.at("run"), now = run_shape(config, plan);
    for (const auto& [key, value] : now.items())
      if (saved.value(key, nlohmann::json()) != value)
        throw Error("the checkpoint's run had " + key + " = " + saved.value(key, nlohmann::json()).dump() +
                    ", this one has " + value.dump() +
                    (key == "total_cycles" ? " (keep --max_steps, --num_train_epochs and the data as they were)"
                     : key == "seed" || key == "algorithm"
                         ? " (resume with the same flags)"
                         : " (a checkpoint resumes on the topology that wrote it; resharding one is not supported)"));
    progress.cycle = state.at("cycle").get<int64_t>();
    progress.metrics_bytes = state.at("metrics_bytes").get<int64_t>();
    progress.before = evaluation_from_json(state.at("before"));
    progress.before_sampled = evaluation_from_json(state.at("before_sampled"));
    progress.finished = state.at("finished").get<bool>();
    progress.after = evaluation_from_json(state.at("after"));
    progress.after_sampled = evaluation_from_json(state.at("after_sampled"));
    plan.algorithm->restore_state(state.at("algorithm_state").get<std::map<std::string, double>>());
  } catch (const nlohmann::json::exception& e) {
    throw Error(state_path.string() + ": " + e.what());
  } catch (const Error& e) {
    throw Error(state_path.string() + ": cannot resume: " + e.what());
  }
  ask_roles(runtime, dir, /*write=*/false);
  log::info("step3: resuming after cycle ", progress.cycle, " from ", dir.string());
  return progress;
}

}  // namespace troupe::actors
