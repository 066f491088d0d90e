/// The critic, and the stand-in of algorithms without one.
#include "critic_role.hpp"

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/common/error.hpp>
#include <troupe/engine/checkpoint.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/models/pretrained.hpp>

#include "role_training.hpp"

namespace troupe::actors {

CriticRole::CriticRole(models::CausalLM critic, engine::TrainOptions train, std::shared_ptr<const rl::Algorithm> algorithm,
                       PpoTrainingOptions ppo, std::filesystem::path tokenizer_dir,
                       std::shared_ptr<DataParallel> data_parallel,
                       std::shared_ptr<models::PartitionedLayers> partitioned)
    : trainer_(std::move(critic), std::move(train)),
      algorithm_(std::move(algorithm)),
      ppo_(std::move(ppo)),
      tokenizer_dir_(std::move(tokenizer_dir)),
      data_parallel_(std::move(data_parallel)) {
  if (!algorithm_) throw Error("CriticRole: no algorithm");
  if (!trainer_.model()->has_value_head()) throw Error("the critic model has no value head (v_head)");
  check_micro_batching(ppo_.max_tokens_per_microbatch, *algorithm_);
  if (data_parallel_) data_parallel_->attach(trainer_, std::move(partitioned));
}

TensorBatch CriticRole::score(const TensorBatch& batch) {
  auto& model = *trainer_.model();
  const auto device = device_of(model);
  torch::Tensor values;
  trainer_.evaluate([&](models::CausalLMImpl& m) {
    values = engine::sequence_values(m, require_tensor(batch, keys::sequences, "critic score").to(device),
                                     require_tensor(batch, keys::attention_mask, "critic score").to(device))
                 .to(torch::kFloat32);
  });
  return {{keys::values, values}};
}

MinibatchStep CriticRole::value_step(const rl::Experience* minibatch) {
  return minibatch_step(trainer_, minibatch, ppo_.max_tokens_per_microbatch, data_parallel_.get(), "critic",
                        [&](models::CausalLMImpl& model, const rl::Experience& rows) {
                          auto values = engine::sequence_values(model, rows.sequences, rows.attention_mask);
                          return algorithm_->value_loss(values.to(torch::kFloat32), rows);
                        });
}

Metrics CriticRole::train(const std::vector<TensorBatch>& batches, int64_t) {
  auto exp = training_experience(batches);
  if (exp) *exp = exp->to(device_of(*trainer_.model()));
  auto updates = ppo_updates(exp, ppo_, data_parallel_.get(), [&](const rl::Experience* minibatch) { return value_step(minibatch); });
  if (updates.steps == 0) return skipped();
  Metrics metrics{{{"critic_grad_norm", updates.grad_norm}, {"critic_lr", trainer_.learning_rate()}}};
  if (updates.counted) metrics.values["critic_loss"] = updates.loss;
  add_micro_batch_metrics(metrics, "critic", ppo_, updates);
  if (data_parallel_) add_data_parallel_metrics(metrics, "critic", *data_parallel_, trainer_);
  add_layout_metrics(metrics, "critic", data_parallel_.get(), trainer_);
  return metrics;
}

void CriticRole::save_state(const std::string& dir) {
  save_trainer_state(trainer_, tokenizer_dir_, rank_state_dir(dir, "critic", data_parallel_.get()), nlohmann::json::object());
}

void CriticRole::load_state(const std::string& dir) {
  load_trainer_state(trainer_, rank_state_dir(dir, "critic", data_parallel_.get()));
}

void CriticRole::save(const std::string& path) {
  save_whole(trainer_, data_parallel_.get(), [&] { engine::save_model_dir(*trainer_.model(), tokenizer_dir_, path); });
}

void CriticRole::load(const std::string& path) { load_whole(trainer_, path); }

std::string CriticRole::describe() const {
  const auto& config = trainer_.model()->config();
  return std::string(models::family_name(config.family)) + " critic " + std::to_string(config.num_layers) + " layers" +
         data_parallel_text(data_parallel_.get());
}

TensorBatch NoCriticRole::score(const TensorBatch& batch) {
  const auto& sequences = require_tensor(batch, keys::sequences, "critic score");
  return {{keys::values, torch::zeros({sequences.size(0), sequences.size(1) - 1}, torch::kFloat32)}};
}

Metrics NoCriticRole::train(const std::vector<TensorBatch>&, int64_t) { return {}; }

}  // namespace troupe::actors
