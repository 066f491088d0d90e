/// The reward: a reward model or a reward function.
#include "reward_role.hpp"

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/common/error.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/frozen_weights.hpp>

#include "role_training.hpp"

namespace troupe::actors {

std::pair<std::vector<std::string>, std::vector<std::string>> decode_rollouts(const models::Tokenizer& tokenizer,
                                                                              const torch::Tensor& sequences,
                                                                              const torch::Tensor& attention_mask,
                                                                              int64_t prompt_length) {
  auto seq = sequences.to(torch::kCPU, torch::kLong).contiguous();
  auto mask = attention_mask.to(torch::kCPU, torch::kLong).contiguous();
  std::vector<std::string> prompts, answers;
  for (int64_t b = 0; b < seq.size(0); ++b) {
    std::vector<int64_t> prompt, answer;
    auto row_tensor = seq[b], mask_tensor = mask[b];
    auto row = row_tensor.accessor<int64_t, 1>();
    auto real = mask_tensor.accessor<int64_t, 1>();
    for (int64_t t = 0; t < seq.size(1); ++t)
      if (real[t]) (t < prompt_length ? prompt : answer).push_back(row[t]);
    prompts.push_back(tokenizer.decode(prompt, true));
    answers.push_back(tokenizer.decode(answer, true));
  }
  return {prompts, answers};
}

RewardRole::RewardRole(models::CausalLM reward_model, std::shared_ptr<DataParallel> partition_over,
                       torch::ScalarType compute_dtype, std::shared_ptr<models::PartitionedLayers> partitioned)
    : model_(std::move(reward_model)), compute_dtype_(compute_dtype), name_("reward model") {
  if (!model_ || !model_->has_value_head()) throw Error("the reward model has no value head (v_head)");
  model_->eval();
  for (auto& p : model_->parameters()) p.set_requires_grad(false);
  if (compute_dtype_ != torch::kFloat32) models::store_frozen_linears_in(*model_, compute_dtype_);
  if (partition_over && partition_over->world() > 1)
    partition_ = std::make_unique<engine::Zero3Partition>(model_, partition_over->zero3_collectives(), std::move(partitioned),
                                                          partition_over->zero3_prefetch_layers());
}

RewardRole::RewardRole(std::shared_ptr<rl::RewardFunction> function, std::shared_ptr<const models::Tokenizer> tokenizer,
                       std::string name)
    : function_(std::move(function)), tokenizer_(std::move(tokenizer)), name_(std::move(name)) {
  if (!function_ || !tokenizer_) throw Error("RewardRole: a reward function needs the function and a tokenizer");
}

TensorBatch RewardRole::score(const TensorBatch& batch) {
  auto sequences = require_tensor(batch, keys::sequences, "reward score");  // (B, T)
  auto mask = require_tensor(batch, keys::attention_mask, "reward score");  // (B, T)
  if (partition_ && sequences.size(0) == 0) {  // no rows here: a one-token pass joins the layers' gathers
    engine::join_partitioned_pass(*model_);
    return {};
  }
  const int64_t prompt_length = prompt_length_of(batch, "reward score");
  // ReMax's greedy answers go in the same pass (one request, one partitioned pass) and
  // come back as baseline_reward.
  const bool greedy = batch.count(keys::greedy_sequences) > 0;
  const int64_t rows = sequences.size(0);
  if (greedy) {
    sequences = torch::cat({sequences, require_tensor(batch, keys::greedy_sequences, "reward score")});  // (2B, T)
    mask = torch::cat({mask, require_tensor(batch, keys::greedy_attention_mask, "reward score")});      // (2B, T)
  }
  torch::Tensor scores;  // (B,) or (2B,)
  if (function_) {
    auto [prompts, answers] = decode_rollouts(*tokenizer_, sequences, mask, prompt_length);
    scores = function_->score_batch(prompts, answers);
  } else {
    torch::NoGradGuard no_grad;
    const auto device = device_of(*model_);
    engine::AutocastScope autocast(device.type(), compute_dtype_);
    scores = engine::end_scores(*model_, sequences.to(device), mask.to(device), prompt_length).to(torch::kFloat32);
  }
  if (!greedy) return {{keys::reward_score, scores}};
  return {{keys::reward_score, scores.slice(0, 0, rows)}, {keys::baseline_reward, scores.slice(0, rows)}};
}

std::string RewardRole::describe() const {
  if (!partition_) return "reward: " + name_;
  return "reward: " + name_ + ", ZeRO-3: layers partitioned over " + std::to_string(partition_->world()) +
         " ranks (holds " + engine::format_bytes(partition_->param_resident_bytes()) + " of " +
         engine::format_bytes(partition_->whole_param_bytes()) + " of parameters)";
}

}  // namespace troupe::actors
