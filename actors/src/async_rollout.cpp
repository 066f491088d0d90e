#include "async_rollout.hpp"

#include <chrono>
#include <mutex>

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/common/error.hpp>
#include <troupe/rl/ema.hpp>

#include "policy_role.hpp"

namespace troupe::actors {

void check_async_rollout(const Step3Config& config, const Step3Plan& plan) {
  if (!config.async_rollout) {
    if (config.rollout_is_truncation != 0)
      throw Error("--rollout_is_truncation corrects rollouts of an older actor: it needs --async_rollout");
    return;
  }
  if (config.rollout_is_truncation < 0)
    throw Error("--rollout_is_truncation must be >= 0 (0 = off), got " + std::to_string(config.rollout_is_truncation));
  const auto refuse = [](const std::string& why) { throw Error("--async_rollout: " + why); };
  const auto& placement = plan.placement;
  if (placement.worker_processes() > 0 || !config.listen.empty())
    refuse("the rollout copy takes the actor's weights in this process; run every role here (a --topology "
           "without worker processes, no --listen)");
  if (placement.actor_ranks > 1)
    refuse("the actor has " + std::to_string(placement.actor_ranks) +
           " ranks; the rollout copy follows one actor rank (no data-parallel actor, ZeRO-3 or "
           "--inference_tp_size > 1)");
  if (config.inference_tp_size > 1) refuse("--inference_tp_size > 1 (tensor-parallel generation) is not supported");
  if (config.resume)
    refuse("--resume: a checkpoint does not hold the rollout in flight; resume without --async_rollout");
}

AsyncRollout::AsyncRollout(std::shared_ptr<PolicyRole> rollout, std::shared_ptr<PolicyRole> actor,
                           bool rollout_logprobs)
    : rollout_(std::move(rollout)), actor_(std::move(actor)), rollout_logprobs_(rollout_logprobs) {
  if (!rollout_ || !actor_) throw Error("AsyncRollout: needs the actor and its rollout copy");
  // Where the actor's rollouts would be: the same samples as a synchronous run's.
  rollout_->set_generations(actor_->generations());
  sync_weights(0);
}

AsyncRollout::~AsyncRollout() {
  if (!pending_.valid()) return;
  try {
    pending_.get();
  } catch (...) {
  }
}

void AsyncRollout::start(TensorBatch prompts) {
  if (pending_.valid()) throw Error("AsyncRollout: a generation is already in flight");
  pending_ = std::async(std::launch::async, [this, prompts = std::move(prompts)] {
    const auto started = std::chrono::steady_clock::now();
    Rollout result;
    const auto& history = rollout_->hybrid().timing_history();
    const size_t first = history.size();
    result.batch = rollout_->generate(prompts);
    for (size_t i = first; i < history.size(); ++i) {  // several with --generation_batches > 1
      result.timings.enter_seconds += history[i].enter_seconds;
      result.timings.generate_seconds += history[i].generate_seconds;
      result.timings.leave_seconds += history[i].leave_seconds;
    }
    if (result.batch.empty()) throw Error("--async_rollout: the rollout copy generated no rows");
    const int64_t rows = result.batch.at(keys::sequences).size(0);
    result.batch[keys::rollout_weights_version] = torch::full({rows}, version_, torch::kLong);  // (B)
    if (rollout_logprobs_) result.batch[keys::rollout_logprobs] = rollout_->score(result.batch).at(keys::logprobs);  // (B, T-1)
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return result;
  });
}

AsyncRollout::Rollout AsyncRollout::wait() {
  if (!pending_.valid()) throw Error("AsyncRollout: no generation in flight");
  return pending_.get();
}

double AsyncRollout::sync_weights(int64_t version) {
  if (pending_.valid()) throw Error("AsyncRollout: weights handed over while the copy generates");
  const auto started = std::chrono::steady_clock::now();
  auto& from = actor_->hybrid();
  auto& to = rollout_->hybrid();
  // Both engines' locks: no scoring or training on either model meanwhile.
  std::scoped_lock lock(*from.model_mutex(), *to.model_mutex());
  torch::NoGradGuard no_grad;
  const auto targets = to.model()->named_parameters();
  // What trains is what changes (a LoRA actor's adapters); the frozen rest is equal already.
  for (const auto& item : rl::trainable_parameters(from.model()->named_parameters())) {
    const auto* target = targets.find(item.key());
    if (!target) throw Error("--async_rollout: the rollout copy has no parameter " + item.key());
    target->copy_(item.value());
  }
  version_ = version;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

}  // namespace troupe::actors
