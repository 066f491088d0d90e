#pragma once
/// The epoch loop steps 1 and 2 share: micro-batches through a TrainEngine, evaluation
/// on schedule, metrics to JSONL and TensorBoard, a progress line, checkpoints that
/// `--resume` continues from exactly.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <troupe/engine/train_engine.hpp>

namespace troupe::engine {

class MetricsLog;
class TensorBoardWriter;

using MetricValues = std::map<std::string, double>;

/// One micro-batch's loss and how many tokens it trained on.
struct BatchLoss {
  torch::Tensor loss;
  int64_t tokens = 0;
  /// Further training metrics of the micro-batch (e.g. DPO's rewards), averaged over the
  /// accumulation window and logged beside the loss.
  MetricValues metrics;
};

/// What a phase trains on and how it is evaluated.
struct PhaseTask {
  /// Micro-batches per epoch (the same every epoch).
  int64_t batches_per_epoch = 0;
  /// The loss of micro-batch `batch` of `epoch`, with autograd (runs in training mode).
  std::function<BatchLoss(models::CausalLMImpl& model, int64_t epoch, int64_t batch)> loss;
  /// Evaluation metrics (runs in eval mode without autograd), e.g. {"perplexity", ...}.
  std::function<MetricValues(models::CausalLMImpl& model)> evaluate;
};

struct PhaseOptions {
  std::string phase = "step1";  ///< names metrics ("step1/loss") and the progress line
  int64_t epochs = 1;
  /// Evaluate every this many optimizer steps (0 = only before training and at the end).
  int64_t eval_interval = 0;
  /// Save a resumable checkpoint every this many optimizer steps (0 = only at the end).
  int64_t save_interval = 0;
  /// Stop after this many optimizer steps (0 = all epochs); the checkpoint then
  /// resumes from where it stopped.
  int64_t max_steps = 0;
  std::filesystem::path output_dir;     ///< the model goes here; metrics beside it
  std::filesystem::path tokenizer_dir;  ///< tokenizer files copied into every save
  bool resume = false;                  ///< continue from output_dir/checkpoint
  bool evaluate_first = true;           ///< evaluate before the first step (the "before" number)
  /// Where metrics go (both may be null).
  MetricsLog* metrics = nullptr;
  TensorBoardWriter* tensorboard = nullptr;
  /// Data-parallel ranks (the engine is wired to their group): each rank trains on its
  /// own batches and evaluates its share of the eval samples (the task adds the sums over
  /// the ranks); each keeps its checkpoint in checkpoint/rank<r>; rank 0 writes the final
  /// model (gathered first under ZeRO stage 3).
  int rank = 0;
  int world = 1;
  int zero_stage = 0;  ///< recorded in checkpoints: a resume must have the same ranks and stage
  /// The smallest `value` over the ranks: they resume only when every one of them has a
  /// checkpoint. Required when world > 1.
  std::function<int64_t(int64_t)> min_over_ranks;
};

struct PhaseResult {
  MetricValues initial_eval;  ///< before training (empty when not evaluated)
  MetricValues final_eval;
  int64_t optimizer_steps = 0;
  int64_t tokens = 0;
  double seconds = 0;
  bool finished = false;  ///< ran every epoch (false when max_steps stopped it)
};

/// Runs the phase. The final model is written into output_dir (Hugging Face files, so
/// it is the next step's --model_name_or_path; a LoRA over a frozen base also as the
/// PEFT adapter output_dir/adapter/) and the resumable state to output_dir/checkpoint.
PhaseResult run_phase(TrainEngine& engine, const PhaseTask& task, const PhaseOptions& options);

/// Where run_phase keeps the resumable checkpoint of `output_dir` (rank `rank`'s, when
/// the phase runs on `world` > 1 ranks).
std::filesystem::path checkpoint_dir(const std::filesystem::path& output_dir, int rank = 0, int world = 1);

}  // namespace troupe::engine
