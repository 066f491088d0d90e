#pragma once
/// How the policy and critic train on one experience batch.
#include <memory>
#include <optional>
#include <string>

#include <troupe/data/unsupervised.hpp>

namespace troupe::actors {

struct PpoTrainingOptions {
  int64_t ppo_epochs = 1;
  int64_t minibatch_size = 16;  ///< --per_device_training_batch_size
  /// --max_tokens_per_microbatch: each minibatch runs in micro-batches of at most this
  /// many padded tokens, gradients accumulated over them before its one optimizer step
  /// (rl/micro_batches.hpp); 0 = each minibatch in one pass.
  int64_t max_tokens_per_microbatch = 0;
  bool enable_ema = false;
  double ema_beta = 0.992;
  /// Mixture (ptx) training: after the PPO updates, one step on unsup_coef * LM loss of
  /// `unsupervised_batch` blocks drawn in a seeded order (none when no blocks).
  std::shared_ptr<const data::UnsupervisedBlocks> unsupervised;
  double unsup_coef = 27.8;
  int64_t unsupervised_batch = 4;
  uint64_t seed = 1234;
};

}  // namespace troupe::actors
