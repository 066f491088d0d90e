#pragma once
/// What the trainable roles (policy, critic) share: the experience of a train request,
/// the PPO minibatch loop, and their data-parallel wiring and metrics.
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/actors/messages.hpp>
#include "ppo_training_options.hpp"
#include <troupe/actors/ticket_store.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/causal_lm.hpp>
#include <troupe/rl/algorithm.hpp>
#include <troupe/rl/experience.hpp>

#include <nlohmann/json.hpp>

namespace troupe::actors {

struct Updates {
  int64_t steps = 0;    ///< steps taken, empty ones included
  int64_t counted = 0;  ///< steps on rows of this rank
  double loss = 0;      ///< mean loss of the counted steps
  double grad_norm = 0; ///< of the last optimizer step
  int64_t micro_batches = 0;  ///< passes over rows of this rank, over all counted steps
};

/// The loss of one batch of rows (a minibatch or a micro-batch of one) under `model`.
using BatchLoss = std::function<torch::Tensor(models::CausalLMImpl& model, const rl::Experience& batch)>;

/// What one PPO minibatch step did.
struct MinibatchStep {
  engine::MicroStep step;     ///< its loss is the minibatch's: the micro-batches' shares summed
  int64_t micro_batches = 0;  ///< passes over rows of this rank (0 for a rank without rows)
};

/// Where the model's parameters live.
torch::Device device_of(const models::CausalLMImpl& model);

/// T0 of a sequences batch; throws naming `where` when the batch has none.
int64_t prompt_length_of(const TensorBatch& batch, const std::string& where);

/// How a score request's sequences are scored: only the answer's log-prob columns
/// (from prompt_length - 1, what PPO reads) when the batch carries its prompt length,
/// every column otherwise.
engine::ScoringOptions answer_scoring(const TensorBatch& batch);

/// The training experience of a train request: its batches concatenated.
std::optional<rl::Experience> training_experience(const std::vector<TensorBatch>& batches);

/// The loss of a data-parallel rank's pass when it has no rows left: zero, so its
/// gradients count zeros in the ranks' average (every rank takes the same steps: each
/// all-reduces). Under ZeRO stage 3 it comes from a one-token pass, so that the rank
/// joins every layer's gathers and gradient reduce-scatters as the others run them.
std::function<torch::Tensor(models::CausalLMImpl&)> zero_loss(engine::TrainEngine& trainer, const std::string& role);

/// Throws troupe::Error naming --max_tokens_per_microbatch when it is negative, or on
/// (> 0) with an algorithm that does not support_micro_batches().
void check_micro_batching(int64_t max_tokens, const rl::Algorithm& algorithm);

/// One PPO step on `minibatch` (none: a data-parallel rank out of rows takes a zero-loss
/// step). With `max_tokens` > 0 it runs in token-budget micro-batches
/// (rl::token_budget_micro_batches): `loss_of` on each gives its share of the
/// minibatch's loss, the gradients accumulate, and the optimizer steps after the last.
/// With a data-parallel `group` every rank then makes as many passes as the rank with
/// the most, the missing ones with zero loss (under ZeRO stage 3 each pass gathers every
/// layer with the other ranks). `max_tokens` 0: one pass over the minibatch.
MinibatchStep minibatch_step(engine::TrainEngine& trainer, const rl::Experience* minibatch, int64_t max_tokens,
                             DataParallel* group, const std::string& role, const BatchLoss& loss_of);

/// This rank's parameter bytes outside a pass: its chunks and what it keeps whole under
/// ZeRO stage 3, else every parameter.
int64_t param_resident_bytes(const engine::TrainEngine& trainer);

/// `<role>_zero_stage` and `<role>_param_resident_mib` (this rank's parameters outside a
/// pass), for every role that trains, data-parallel or not.
void add_layout_metrics(Metrics& metrics, const std::string& role, const DataParallel* group,
                        const engine::TrainEngine& trainer);

/// Loads the weights of the model directory `path` into the trainer's model: under ZeRO
/// stage 3 every rank (a collective) loads the whole model and keeps its chunks of it.
void load_whole(engine::TrainEngine& trainer, const std::string& path);

/// Saving a trained model: under ZeRO stage 3 every rank gathers the whole model (a
/// collective: each rank must call this) and rank 0 runs `write`; otherwise only rank 0
/// (or the one process) runs it.
void save_whole(engine::TrainEngine& trainer, const DataParallel* group, const std::function<void()>& write);

/// The PPO minibatch steps of one train() call: every minibatch of every epoch. With a
/// data-parallel `group`, as many steps per epoch as the rank with the most rows needs,
/// its rows spread evenly over them; a rank short of rows steps with none
/// (`update(nullptr)` takes a zero-loss step).
Updates ppo_updates(const std::optional<rl::Experience>& exp, const PpoTrainingOptions& ppo, DataParallel* group,
                    const std::function<MinibatchStep(const rl::Experience*)>& update);

/// `<role>_micro_batches`, the passes per PPO step, when `ppo` splits minibatches.
void add_micro_batch_metrics(Metrics& metrics, const std::string& role, const PpoTrainingOptions& ppo,
                             const Updates& updates);

/// What a data-parallel rank adds to its metrics: how far the ranks' weights drifted
/// apart (0 when in step), the group size, and its share of the optimizer state.
void add_data_parallel_metrics(Metrics& metrics, const std::string& role, DataParallel& group,
                               const engine::TrainEngine& trainer);

/// ", data-parallel rank R of W (gloo, ZeRO stage S)" for a role's description.
std::string data_parallel_text(const DataParallel* group);

/// The metrics of a train() call that had no rows to train on.
Metrics skipped();

/// This rank's part of a step-3 checkpoint `dir`: dir/ROLE/rankR (R = 0 without a group).
std::filesystem::path rank_state_dir(const std::string& dir, const std::string& role, const DataParallel* group);

/// Writes the trainer's state to `rank_dir` (engine::save_training_checkpoint: the weights
/// as they train, optimizer, schedule, counters, this process's RNG) with the role's
/// `extra` counters (under ZeRO stage 3 this rank's master chunks).
void save_trainer_state(engine::TrainEngine& trainer, const std::filesystem::path& tokenizer_dir,
                        const std::filesystem::path& rank_dir, const nlohmann::json& extra);
/// Restores what save_trainer_state() wrote; returns the role's `extra`.
nlohmann::json load_trainer_state(engine::TrainEngine& trainer, const std::filesystem::path& rank_dir);

}  // namespace troupe::actors
