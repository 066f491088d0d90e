#pragma once
/// The critic of step 3 (scores and trains), and the stand-in of algorithms without one.
#include <memory>
#include <optional>
#include <string>

#include <troupe/actors/data_parallel.hpp>
#include "ppo_training_options.hpp"
#include "role_training.hpp"
#include <troupe/actors/role_model.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/causal_lm.hpp>
#include <troupe/rl/algorithm.hpp>

namespace troupe::actors {

/// The critic: values[:, :-1] for scoring, the algorithm's value loss for training.
/// With `data_parallel`, this is one rank of several: it trains on its rows, averages
/// gradients with the other ranks before every step, takes as many steps as the rank
/// with the most rows (an empty step where it has none), reports how far the ranks'
/// weights drifted apart (critic_dp_divergence, 0 when in step), and saves on rank 0.
class CriticRole : public RoleModel, public Trainable {
 public:
  CriticRole(models::CausalLM critic, engine::TrainOptions train, std::shared_ptr<const rl::Algorithm> algorithm,
             PpoTrainingOptions ppo, std::filesystem::path tokenizer_dir,
             std::shared_ptr<DataParallel> data_parallel = nullptr,
             std::shared_ptr<models::PartitionedLayers> partitioned = nullptr);
  TensorBatch score(const TensorBatch& sequences) override;
  Metrics train(const std::vector<TensorBatch>& experience, int64_t step) override;
  void save(const std::string& path) override;
  void load(const std::string& path) override;
  /// dir/critic/rankR: the trainer's state.
  void save_state(const std::string& dir) override;
  void load_state(const std::string& dir) override;
  std::string describe() const override;
  /// Under ZeRO stage 3 every rank scores every request (each layer is gathered).
  bool scores_in_group() const override { return trainer_.zero3() != nullptr; }
  Trainable* trainable() override { return this; }
  engine::TrainEngine& trainer() { return trainer_; }

 private:
  /// One step of the value loss on `minibatch` (none: a zero-loss step of a data-parallel
  /// rank out of rows), in token-budget micro-batches when on.
  MinibatchStep value_step(const rl::Experience* minibatch);

  engine::TrainEngine trainer_;
  std::shared_ptr<const rl::Algorithm> algorithm_;
  PpoTrainingOptions ppo_;
  std::filesystem::path tokenizer_dir_;
  std::shared_ptr<DataParallel> data_parallel_;
};

/// For algorithms without a critic (GRPO): zero values. The controller asks the critic
/// to train every cycle; this one has no weights, so a train() does nothing, and there
/// is nothing to save or load.
class NoCriticRole : public RoleModel, public Trainable {
 public:
  TensorBatch score(const TensorBatch& sequences) override;
  Metrics train(const std::vector<TensorBatch>& experience, int64_t step) override;
  void save(const std::string&) override {}
  void load(const std::string&) override {}
  void save_state(const std::string&) override {}
  void load_state(const std::string&) override {}
  std::string describe() const override { return "no critic (the algorithm needs none)"; }
  Trainable* trainable() override { return this; }
};

}  // namespace troupe::actors
