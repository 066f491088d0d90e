#pragma once
/// The RoleModels of step 3 over the engine: the policy (hybrid engine: generate in
/// inference layout, PPO updates in training layout, EMA, mixture training), the critic,
/// the reference policy, and the reward (a reward model or a C++ reward function).
/// Each takes its inputs from a TensorBatch and names its outputs as the experience
/// does: "logprobs", "ref_logprobs", "values", "reward_score".
#include <memory>
#include <optional>
#include <string>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/actors/frozen_partition.hpp>
#include <troupe/actors/role_model.hpp>
#include <troupe/data/unsupervised.hpp>
#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/tokenizer.hpp>
#include <troupe/rl/algorithm.hpp>
#include <troupe/rl/ema.hpp>
#include <troupe/rl/reward_function.hpp>

namespace troupe::actors {

/// How the policy and critic train on one experience batch.
struct PpoTrainingOptions {
  int64_t ppo_epochs = 1;
  int64_t minibatch_size = 16;  ///< --per_device_training_batch_size
  bool enable_ema = false;
  double ema_beta = 0.992;
  /// Mixture (ptx) training: after the PPO updates, one step on unsup_coef * LM loss of
  /// `unsupervised_batch` blocks drawn in a seeded order (none when no blocks).
  std::shared_ptr<const data::UnsupervisedBlocks> unsupervised;
  double unsup_coef = 27.8;
  int64_t unsupervised_batch = 4;
  uint64_t seed = 1234;
};

/// The actor. generate() repeats each prompt samples_per_prompt times (consecutive
/// rows) and answers {"sequences", "attention_mask", "prompt_length"}; score() gives
/// the old log-probs; train() takes one experience batch (experience_batch.hpp).
/// With `data_parallel`, this is one rank of several (DeepSpeed-Chat's data-parallel
/// actor): it generates for its rows, padded to the full answer length so that the
/// ranks' batches join; trains on its rows and its own mixture blocks with gradients
/// averaged over the ranks (or ZeRO-sharded, as the critic's), taking as many steps as
/// the rank with the most rows; reports actor_dp_divergence (0 when in step).
class PolicyRole : public RoleModel {
 public:
  PolicyRole(std::shared_ptr<engine::HybridEngine> hybrid, engine::TrainOptions train,
             models::GenerationOptions generation, std::shared_ptr<const rl::Algorithm> algorithm,
             PpoTrainingOptions ppo, std::filesystem::path tokenizer_dir,
             std::shared_ptr<DataParallel> data_parallel = nullptr);
  /// With a tensor-parallel generation group (hybrid().set_tensor_parallel), every
  /// rank of the group generates as often as the rank with the most prompt chunks, with
  /// no rows when it has none left, and returns no rows when it had no prompts.
  TensorBatch generate(const TensorBatch& prompts) override;
  bool generates_in_group() const override { return hybrid_->tensor_parallel().world > 1; }
  TensorBatch score(const TensorBatch& sequences) override;
  Metrics train(const std::vector<TensorBatch>& experience, int64_t step) override;
  /// The actor as a Hugging Face directory at `path`, and its EMA at `path`_ema when on.
  void save(const std::string& path) override;
  void load(const std::string& path) override;
  std::string describe() const override;

  /// Prompts per generate() call (DeepSpeed-Chat's per_device_generation_batch_size when
  /// --generation_batches > 1 gathers several generation batches into one experience);
  /// the answers are right-padded to one length. 0 = all prompts in one call.
  void set_prompts_per_generation(int64_t prompts) { prompts_per_generation_ = prompts; }

  engine::HybridEngine& hybrid() { return *hybrid_; }
  engine::TrainEngine& trainer() { return trainer_; }
  const rl::Ema* ema() const { return ema_ ? &*ema_ : nullptr; }

 private:
  double mixture_step(int64_t step);
  /// One PPO step on `minibatch` (none: a zero-loss step of a data-parallel rank out of
  /// rows), then the mixture step when on.
  engine::MicroStep policy_step(const rl::Experience* minibatch, int64_t step);

  std::shared_ptr<engine::HybridEngine> hybrid_;
  engine::TrainEngine trainer_;
  models::GenerationOptions generation_;
  std::shared_ptr<const rl::Algorithm> algorithm_;
  PpoTrainingOptions ppo_;
  std::filesystem::path tokenizer_dir_;
  std::optional<rl::Ema> ema_;
  int64_t generations_ = 0;
  int64_t prompts_per_generation_ = 0;
  std::shared_ptr<DataParallel> data_parallel_;
  // Per train() call: what policy_step adds up.
  double unsup_total_ = 0, approx_kl_total_ = 0, first_approx_kl_ = 0;
  int64_t unsup_steps_ = 0, updates_ = 0;
};

/// The critic: values[:, :-1] for scoring, the algorithm's value loss for training.
/// With `data_parallel`, this is one rank of several: it trains on its rows, averages
/// gradients with the other ranks before every step, takes as many steps as the rank
/// with the most rows (an empty step where it has none), reports how far the ranks'
/// weights drifted apart (critic_dp_divergence, 0 when in step), and saves on rank 0.
class CriticRole : public RoleModel {
 public:
  CriticRole(models::CausalLM critic, engine::TrainOptions train, std::shared_ptr<const rl::Algorithm> algorithm,
             PpoTrainingOptions ppo, std::filesystem::path tokenizer_dir,
             std::shared_ptr<DataParallel> data_parallel = nullptr);
  TensorBatch generate(const TensorBatch& prompts) override;
  TensorBatch score(const TensorBatch& sequences) override;
  Metrics train(const std::vector<TensorBatch>& experience, int64_t step) override;
  void save(const std::string& path) override;
  void load(const std::string& path) override;
  std::string describe() const override;

 private:
  engine::MicroStep value_step(const rl::Experience* minibatch);

  engine::TrainEngine trainer_;
  std::shared_ptr<const rl::Algorithm> algorithm_;
  PpoTrainingOptions ppo_;
  std::filesystem::path tokenizer_dir_;
  std::shared_ptr<DataParallel> data_parallel_;
};

/// For algorithms without a critic (GRPO): zero values, nothing to train.
class NoCriticRole : public RoleModel {
 public:
  TensorBatch generate(const TensorBatch& prompts) override;
  TensorBatch score(const TensorBatch& sequences) override;
  Metrics train(const std::vector<TensorBatch>& experience, int64_t step) override;
  void save(const std::string&) override {}
  void load(const std::string&) override {}
  std::string describe() const override { return "no critic (the algorithm needs none)"; }
};

/// The frozen reference: "ref_logprobs".
class ReferenceRole : public RoleModel {
 public:
  explicit ReferenceRole(std::shared_ptr<engine::ReferencePolicy> reference);
  TensorBatch generate(const TensorBatch& prompts) override;
  TensorBatch score(const TensorBatch& sequences) override;
  Metrics train(const std::vector<TensorBatch>& experience, int64_t step) override;
  void save(const std::string&) override {}
  void load(const std::string&) override {}
  std::string describe() const override;

 private:
  std::shared_ptr<engine::ReferencePolicy> reference_;
};

/// The reward: a reward model's end score, or a reward function of the decoded prompt
/// and answer. "reward_score" (B).
class RewardRole : public RoleModel {
 public:
  /// A reward model (with a value head). With `partition_over`, its decoder layers are
  /// partitioned over that group's ranks (ZeRO stage 3, frozen_partition.hpp): every
  /// rank then scores together, one with no rows by a one-token pass.
  explicit RewardRole(models::CausalLM reward_model, std::shared_ptr<DataParallel> partition_over = nullptr);
  /// A reward function; the tokenizer decodes prompts and answers for it.
  RewardRole(std::shared_ptr<rl::RewardFunction> function, std::shared_ptr<const models::Tokenizer> tokenizer,
             std::string name);
  TensorBatch generate(const TensorBatch& prompts) override;
  TensorBatch score(const TensorBatch& sequences) override;
  bool scores_in_group() const override { return partition_ != nullptr; }
  const FrozenPartition* partition() const { return partition_.get(); }
  Metrics train(const std::vector<TensorBatch>& experience, int64_t step) override;
  void save(const std::string&) override {}
  void load(const std::string&) override {}
  std::string describe() const override;

 private:
  models::CausalLM model_;
  std::unique_ptr<FrozenPartition> partition_;
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
