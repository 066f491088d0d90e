#pragma once
/// The reward of step 3 (scores only): a reward model or a reward function (local or remote).
#include <memory>
#include <optional>
#include <string>

#include <vector>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/engine/zero3.hpp>
#include <troupe/actors/role_model.hpp>
#include <troupe/models/causal_lm.hpp>
#include <troupe/models/tokenizer.hpp>
#include <troupe/rl/reward_function.hpp>

namespace troupe::actors {

/// The reward: a reward model's end score, or a reward function of the decoded prompt
/// and answer. "reward_score" (B); with "greedy_sequences" in the batch (ReMax), also
/// "baseline_reward" (B), their scores. It only scores.
class RewardRole : public RoleModel {
 public:
  /// A reward model (with a value head). With `partition_over`, its decoder layers are
  /// partitioned over that group's ranks (ZeRO stage 3, engine/zero3.hpp, all weights
  /// frozen): every rank then scores together, one with no rows by a one-token pass.
  /// `compute_dtype` bf16 (the run's --dtype): scores under bf16 autocast with the linear
  /// weights kept in bf16 (frozen_weights.hpp).
  /// `partitioned`: what building the model inside a models::PartitionedInit left here.
  explicit RewardRole(models::CausalLM reward_model, std::shared_ptr<DataParallel> partition_over = nullptr,
                      torch::ScalarType compute_dtype = torch::kFloat32,
                      std::shared_ptr<models::PartitionedLayers> partitioned = nullptr);
  /// A reward function; the tokenizer decodes prompts and answers for it.
  RewardRole(std::shared_ptr<rl::RewardFunction> function, std::shared_ptr<const models::Tokenizer> tokenizer,
             std::string name);
  TensorBatch score(const TensorBatch& sequences) override;
  bool scores_in_group() const override { return partition_ != nullptr; }
  const engine::Zero3Partition* partition() const { return partition_.get(); }
  std::string describe() const override;

 private:
  models::CausalLM model_;
  torch::ScalarType compute_dtype_ = torch::kFloat32;
  std::unique_ptr<engine::Zero3Partition> partition_;
  std::shared_ptr<rl::RewardFunction> function_;
  std::shared_ptr<const models::Tokenizer> tokenizer_;
  std::string name_;
};

/// The prompt and answer texts of generated rows: the prompt's real tokens and the
/// answer's real tokens (special tokens skipped), decoded.
std::pair<std::vector<std::string>, std::vector<std::string>> decode_rollouts(const models::Tokenizer& tokenizer,
                                                                              const torch::Tensor& sequences,
                                                                              const torch::Tensor& attention_mask,
                                                                              int64_t prompt_length);

}  // namespace troupe::actors
