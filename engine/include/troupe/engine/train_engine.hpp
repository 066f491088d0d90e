#pragma once
/// One model's training layout: AdamW in parameter groups, a learning-rate schedule,
/// gradient accumulation, gradient-norm clipping and the compute dtype. Steps 1 and 2
/// train through it, and so do the actor and critic of step 3.
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include <torch/optim/adamw.h>

#include <troupe/engine/lr_schedule.hpp>
#include <troupe/engine/optimizer.hpp>
#include <troupe/engine/zero2.hpp>
#include <troupe/engine/zero3.hpp>
#include <troupe/models/causal_lm.hpp>

namespace troupe::engine {

struct TrainOptions {
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  int64_t gradient_accumulation_steps = 1;
  /// Clips the global gradient norm before each optimizer step; 0 = off (DeepSpeed-Chat: 1.0).
  double max_grad_norm = 1.0;
  /// float32: plain fp32. bfloat16: fp32 master weights and optimizer, forward and
  /// backward under autocast to bf16 (the CPU and recent GPUs support it).
  torch::ScalarType compute_dtype = torch::kFloat32;
};

/// "fp32"/"float32", "bf16"/"bfloat16". fp16 is refused with the reason (it needs loss
/// scaling, which troupe does not do); throws troupe::Error naming `flag`.
torch::ScalarType parse_compute_dtype(const std::string& name, const std::string& flag = "--dtype");

/// Turns autocast to `dtype` on for the device type for its lifetime (nothing for fp32).
class AutocastScope {
 public:
  AutocastScope(torch::DeviceType device, torch::ScalarType dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  torch::DeviceType device_;
  bool active_ = false;
  bool was_enabled_ = false;
  torch::ScalarType previous_dtype_ = torch::kFloat32;
};

/// What one micro-batch did.
struct MicroStep {
  double loss = 0;                 ///< the unscaled loss of this micro-batch
  bool optimizer_stepped = false;  ///< this micro-batch completed an accumulation window
  double grad_norm = 0;            ///< before clipping; set when optimizer_stepped
};

class TrainEngine {
 public:
  TrainEngine(models::CausalLM model, TrainOptions options);

  /// Runs `loss_fn` in training mode under autocast, back-propagates loss /
  /// accumulation steps, and after every gradient_accumulation_steps-th call clips,
  /// steps the optimizer and the schedule and zeroes the gradients. Throws
  /// troupe::Error when the loss is not finite (naming the step), before any update.
  MicroStep micro_step(const std::function<torch::Tensor(models::CausalLMImpl&)>& loss_fn);

  /// One pass of a micro-batch that runs in several (step 3's token-budget micro-batches
  /// of one minibatch): back-propagates loss / accumulation steps as micro_step() does,
  /// but neither counts a micro-batch nor steps; the micro_step() of its last pass does
  /// both. Each pass's loss must be its share of the micro-batch's, so that the
  /// gradients add up to the micro-batch's. Returns the pass's loss.
  MicroStep partial_step(const std::function<torch::Tensor(models::CausalLMImpl&)>& loss_fn);

  /// Runs `fn` in eval mode, without autograd, under the engine's autocast; the model
  /// is back in training mode afterwards.
  void evaluate(const std::function<void(models::CausalLMImpl&)>& fn);

  const models::CausalLM& model() const { return model_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  LrScheduler& scheduler() { return *scheduler_; }
  const TrainOptions& options() const { return options_; }
  int64_t global_step() const { return global_step_; }   ///< optimizer steps taken
  int64_t micro_steps() const { return micro_steps_; }   ///< micro-batches seen
  /// Restores the counters after a resume (the optimizer state is loaded separately).
  void set_progress(int64_t global_step, int64_t micro_steps);
  double learning_rate() const;  ///< the first group's current rate

  /// Called with every trainable parameter after the last micro-batch of an
  /// accumulation window and before clipping: a data-parallel rank averages the
  /// gradients with its peers here, so every rank steps the same way.
  using GradientSync = std::function<void(const std::vector<torch::Tensor>& parameters)>;
  void set_gradient_sync(GradientSync sync);

  /// ZeRO stages 1 and 2 across data-parallel ranks.
  ///   stage 1: every parameter has an owner rank (a balanced split by size, the same on
  ///            every rank); the optimizer steps, and keeps AdamW state for, only the
  ///            owned parameters, and after each step every owner broadcasts their new
  ///            values. The gradient sync averages the whole gradient on every rank first.
  ///   stage 2: DeepSpeed's layout (zero2.hpp): the trainable parameters of each optimizer
  ///            group in one flat buffer cut into `world` equal chunks; a rank's AdamW state
  ///            and fp32 gradient cover its chunk only, the gradients are reduced onto the
  ///            chunks' owners in buckets of `reduce_bucket_size` elements during the
  ///            backward, clipping takes the global norm over the chunks, and the updated
  ///            chunks are all-gathered after the step. No gradient sync. Replaces the
  ///            optimizer and the schedule by ones over this rank's chunks.
  struct OptimizerSharding {
    int rank = 0;
    int world = 1;
    int stage = 1;
    std::function<void(torch::Tensor& flat, int root)> broadcast;
    /// Stage 2: `flat` summed over the ranks onto `root` (others: unspecified).
    std::function<void(torch::Tensor& flat, int root)> reduce_sum;
    /// Stage 2: in place, the sum and the maximum over the ranks.
    std::function<void(torch::Tensor& tensor)> all_reduce_sum, all_reduce_max;
    /// Stage 2: gradient elements per bucket (DeepSpeed's reduce_bucket_size).
    int64_t reduce_bucket_size = kDefaultReduceBucketElements;
  };
  void set_optimizer_sharding(OptimizerSharding sharding);
  /// Bytes of optimizer state this rank holds (AdamW's moments, created at first step).
  int64_t optimizer_state_bytes() const;
  /// Bytes of parameters this rank holds outside a pass: every parameter once, or under
  /// ZeRO stage 3 its chunks and the parameters kept whole.
  int64_t parameter_bytes() const;
  /// The most gradient bytes this rank has held: measured at the end of each backward,
  /// before any reduction (every gradient whole under stages 0-1; under stage 3 the
  /// chunks' gradients and the kept-whole parameters' whole ones), and under stage 2 also
  /// as each gradient arrives (its chunk gradients, the bucket buffers being filled and
  /// the whole gradient being copied into one).
  int64_t peak_gradient_bytes() const { return peak_gradient_bytes_; }

  /// ZeRO stage 3 across data-parallel ranks (zero3.hpp): the model's parameters,
  /// gradients and AdamW state are partitioned in flat chunks, layers gathered as they
  /// run. Replaces the optimizer and the schedule by ones over this rank's chunks (so
  /// optimizer() holds chunk state); micro_step() then reduce-scatters the gradients,
  /// clips by the global norm over all chunks and steps only this rank's chunks; nothing
  /// is broadcast. Every decoder layer is recomputed in the backward, whatever
  /// set_gradient_checkpointing says. All ranks must start from the same weights and
  /// call micro_step() equally often, each running the model (a step without rows still
  /// needs a forward and backward through every layer). Refused (troupe::Error) after the
  /// first optimizer step, or together with a gradient sync or optimizer sharding.
  /// `built`: the PartitionedLayers of a model built inside a models::PartitionedInit.
  /// `prefetch_layers`: layers gathered ahead of the running one (0 = none; zero3.hpp).
  /// A pass that throws leaves no gather running (Zero3Partition::finish_prefetches).
  void set_zero3(Zero3Collectives collectives, std::shared_ptr<models::PartitionedLayers> built = nullptr,
                 int prefetch_layers = kDefaultZero3PrefetchLayers);
  /// The partition under ZeRO stage 2, else null.
  const Zero2Partition* zero2() const { return zero2_.get(); }
  /// The partition under ZeRO stage 3, else null: gather_full_parameters() for savers and
  /// generation, param_resident_bytes() for memory.
  Zero3Partition* zero3() { return zero3_.get(); }
  const Zero3Partition* zero3() const { return zero3_.get(); }

 private:
  models::CausalLM model_;
  TrainOptions options_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<LrScheduler> scheduler_;
  std::vector<torch::Tensor> trainable_;
  GradientSync gradient_sync_;
  /// The forward and backward of micro_step() and partial_step(): the loss, checked finite.
  double backward(const std::function<torch::Tensor(models::CausalLMImpl&)>& loss_fn);
  /// After a pass threw: ZeRO stage 3's gathers started ahead for it are waited for and freed.
  void finish_abandoned_prefetches() noexcept;
  void broadcast_owned_parameters();
  /// Bytes of the gradients held now.
  int64_t gradient_bytes() const;
  /// Indices into trainable_ of `root`'s parameters, by dtype.
  std::map<torch::ScalarType, std::vector<size_t>> owned_by(int root) const;

  std::optional<OptimizerSharding> sharding_;
  std::unique_ptr<Zero2Partition> zero2_;
  std::unique_ptr<Zero3Partition> zero3_;
  std::vector<int> owners_;  ///< stage 1: the owning rank of each of trainable_
  int64_t peak_gradient_bytes_ = 0;
  int64_t global_step_ = 0;
  int64_t micro_steps_ = 0;
};

}  // namespace troupe::engine
