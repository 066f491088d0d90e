#pragma once
/// Steps 1 and 2 as PhaseTasks over the data pipeline's tokenized phase data:
/// supervised fine-tuning (causal-LM loss, eval perplexity) and reward-model training
/// (pairwise ranking loss, eval accuracy and mean scores).
#include <cstdint>
#include <functional>

#include <torch/types.h>

#include <troupe/data/pipeline.hpp>
#include <troupe/engine/training_loop.hpp>

namespace troupe::engine {

struct SupervisedTaskOptions {
  int64_t train_batch_size = 8;  ///< --per_device_train_batch_size
  int64_t eval_batch_size = 8;   ///< --per_device_eval_batch_size
  int64_t max_seq_len = 512;
  int64_t pad_token_id = 0;
  uint64_t seed = 1234;  ///< the sampler's shuffle is seeded with seed + epoch
  int rank = 0;
  int world_size = 1;
  /// Evaluate on at most this many eval samples (0 = all), from the start of the split.
  /// With world_size > 1 each rank evaluates every world_size-th of them from `rank`
  /// (DistributedSampler's order, none repeated) and the sums are added over the ranks.
  int64_t max_eval_samples = 0;
  /// In place, the sum over the data-parallel ranks (every rank calls it at the same
  /// point of an evaluation); required when world_size > 1.
  std::function<void(torch::Tensor&)> sum_over_ranks;
  /// --packing: each micro-batch's samples packed end to end into rows of max_seq_len
  /// (packed_batch.hpp); the losses are those of the padded batch.
  bool packing = false;
};

/// Step 1: loss = language_model_loss on prompt + chosen (labels -100 on padding);
/// eval {"loss" = mean cross-entropy over every eval label token, "perplexity" = exp(loss)}.
PhaseTask make_sft_task(const data::PhaseData& data, const SupervisedTaskOptions& options);

/// Step 2: the model needs a value head; loss = reward_model_loss on chosen/rejected
/// pairs; eval {"accuracy", "chosen_score", "rejected_score", "loss"}, each a mean over
/// the eval pairs.
PhaseTask make_reward_model_task(const data::PhaseData& data, const SupervisedTaskOptions& options);

/// Micro-batches per epoch of `samples` training samples on this rank (the same every
/// epoch): the PhaseTask's batches_per_epoch, known before the task is made.
int64_t training_batches_per_epoch(int64_t samples, const SupervisedTaskOptions& options);

/// Per-token values (B, T) of a model with a value head.
torch::Tensor token_values(models::CausalLMImpl& model, const torch::Tensor& input_ids,
                           const torch::Tensor& attention_mask);

}  // namespace troupe::engine
