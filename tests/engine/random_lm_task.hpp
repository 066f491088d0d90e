#pragma once
/// A training phase over fixed random token batches, for engine tests. With dropout on
/// in the model, the RNG state matters for resuming.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <troupe/engine/losses.hpp>
#include <troupe/engine/training_loop.hpp>

namespace troupe::testing {

/// `batches` batches of (4, 12) token ids in [3, 50) per epoch, the LM loss; evaluation
/// on one more fixed batch.
inline engine::PhaseTask random_lm_task(int64_t batches) {
  engine::PhaseTask task;
  task.batches_per_epoch = batches;
  task.loss = [](models::CausalLMImpl& model, int64_t epoch, int64_t batch) {
    auto g = at::make_generator<at::CPUGeneratorImpl>(1000 * epoch + batch);
    auto ids = torch::randint(3, 50, {4, 12}, g, torch::kLong);  // (B, T)
    auto logits = model.forward(ids, torch::ones_like(ids));     // (B, T, V)
    return engine::BatchLoss{engine::language_model_loss(logits, ids), ids.numel(), {}};
  };
  task.evaluate = [](models::CausalLMImpl& model) {
    auto g = at::make_generator<at::CPUGeneratorImpl>(99);
    auto ids = torch::randint(3, 50, {4, 12}, g, torch::kLong);  // (B, T)
    return engine::MetricValues{{"loss", engine::language_model_loss(model.forward(ids, torch::ones_like(ids)), ids).item<double>()}};
  };
  return task;
}

}  // namespace troupe::testing
