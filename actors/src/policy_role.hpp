#pragma once
/// The actor of step 3 (a RoleModel that generates, scores and trains).
#include <memory>
#include <optional>
#include <string>

#include <troupe/actors/data_parallel.hpp>
#include "ppo_training_options.hpp"
#include "role_training.hpp"
#include <troupe/actors/role_model.hpp>
#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/generation.hpp>
#include <troupe/rl/algorithm.hpp>
#include <troupe/rl/ema.hpp>

namespace troupe::actors {

/// The actor. generate() repeats each prompt samples_per_prompt times (consecutive
/// rows) and answers {"sequences", "attention_mask", "prompt_length"}, with
/// "greedy_sequences" and "greedy_attention_mask" (each row's prompt answered greedily)
/// when the algorithm needs_greedy_baseline() and the batch is a rollout; score() gives
/// the old log-probs; train() takes one experience batch (experience_batch.hpp).
/// With `data_parallel`, this is one rank of several (DeepSpeed-Chat's data-parallel
/// actor): it generates for its rows, padded to the full answer length so that the
/// ranks' batches join; trains on its rows and its own mixture blocks with gradients
/// averaged over the ranks (or ZeRO-sharded, as the critic's), taking as many steps as
/// the rank with the most rows; reports actor_dp_divergence (0 when in step).
class PolicyRole : public RoleModel, public Generator, public Trainable {
 public:
  PolicyRole(std::shared_ptr<engine::HybridEngine> hybrid, engine::TrainOptions train,
             models::GenerationOptions generation, std::shared_ptr<const rl::Algorithm> algorithm,
             PpoTrainingOptions ppo, std::filesystem::path tokenizer_dir,
             std::shared_ptr<DataParallel> data_parallel = nullptr,
             std::shared_ptr<models::PartitionedLayers> partitioned = nullptr);
  /// With a tensor-parallel generation group (hybrid().set_tensor_parallel), every
  /// rank of the group generates as often as the rank with the most prompt chunks, with
  /// no rows when it has none left, and returns no rows when it had no prompts.
  TensorBatch generate(const TensorBatch& prompts) override;
  /// Generation is a collective of the actor's ranks when they generate tensor-parallel,
  /// or hold only chunks of the weights (ZeRO stage 3): every rank takes part in every
  /// request, with no prompts if need be. Scoring likewise under ZeRO stage 3.
  bool generates_in_group() const override { return hybrid_->tensor_parallel().world > 1 || trainer_.zero3(); }
  bool scores_in_group() const override { return trainer_.zero3() != nullptr; }
  TensorBatch score(const TensorBatch& sequences) override;
  Metrics train(const std::vector<TensorBatch>& experience, int64_t step) override;
  /// The actor as a Hugging Face directory at `path`, and its EMA at `path`_ema when on.
  void save(const std::string& path) override;
  void load(const std::string& path) override;
  /// dir/actor/rankR: the trainer's state, the generation counter (rollout seeds) and
  /// the EMA's averages.
  void save_state(const std::string& dir) override;
  void load_state(const std::string& dir) override;
  std::string describe() const override;
  Generator* generator() override { return this; }
  Trainable* trainable() override { return this; }

  /// Prompts per generate() call (DeepSpeed-Chat's per_device_generation_batch_size when
  /// --generation_batches > 1 gathers several generation batches into one experience);
  /// the answers are right-padded to one length. 0 = all prompts in one call.
  void set_prompts_per_generation(int64_t prompts) { prompts_per_generation_ = prompts; }
  /// generate() calls so far: each rollout call's seed is the generation seed plus this.
  /// A rollout copy (--async_rollout) starts where the actor is, so that its samples are
  /// the ones the actor would draw.
  int64_t generations() const { return generations_; }
  void set_generations(int64_t generations) { generations_ = generations; }

  engine::HybridEngine& hybrid() { return *hybrid_; }
  engine::TrainEngine& trainer() { return trainer_; }
  const rl::Ema* ema() const { return ema_ ? &*ema_ : nullptr; }

 private:
  double mixture_step(int64_t step);
  /// One PPO step on `minibatch` (none: a zero-loss step of a data-parallel rank out of
  /// rows), in token-budget micro-batches when on, then the mixture step when on.
  MinibatchStep policy_step(const rl::Experience* minibatch, int64_t step);
  /// What the EMA averages: the trainable parameters, or under ZeRO stage 3 this rank's
  /// trainable chunks (so the average is partitioned as the weights are).
  rl::NamedTensors ema_targets() const;
  /// Saves the model as it is now to `path` (under ZeRO stage 3 with every rank).
  void save_current(const std::string& path);

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
  // Since the last train() call: the ZeRO-3 gathers of the whole model for generation.
  double reshard_seconds_ = 0;
  int64_t reshard_bytes_ = 0;
  // Per train() call: what policy_step adds up.
  double unsup_total_ = 0, approx_kl_total_ = 0, first_approx_kl_ = 0;
  int64_t unsup_steps_ = 0, updates_ = 0;
};

}  // namespace troupe::actors
