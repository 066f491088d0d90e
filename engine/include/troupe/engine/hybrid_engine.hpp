#pragma once
/// The Hybrid Engine: one actor model that generates in an inference layout (eval mode,
/// no autograd, packed weights with LoRA folded in, KV cache) and trains in a training
/// layout, switching between the two around every generate() and timing each switch.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/engine/zero3.hpp>
#include <troupe/models/causal_lm.hpp>
#include <troupe/models/generation.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/models/kv_cache.hpp>
#include <troupe/models/tensor_parallel.hpp>

namespace troupe::engine {

struct HybridEngineOptions {
  /// Frees the packed inference weights and the KV cache after every generate() and
  /// hands the allocator's cached blocks back to the device (DeepSpeed-Chat's
  /// `--release_inference_cache`). Off: both are kept; the next generate() refills the
  /// packed weights in place and reuses the cache when its batch and length fit, so
  /// step 3 allocates them once.
  bool release_inference_cache = false;
  /// The dtype of the packed weights generation reads (`--inference_dtype`): fp32, or
  /// bf16 (fp32 sums; DeepSpeed-HE generates in fp16 from fp32 masters, bf16 is the
  /// analogue on CPUs with bf16 dot products). Training keeps the masters' dtype.
  torch::ScalarType inference_dtype = torch::kFloat32;
  /// false (`--inference_weights training`): generation computes with the training
  /// weights themselves, adapters unfused, in their dtype (inference_dtype unused):
  /// no packed copy, so a model too large for two copies still generates, at the BLAS
  /// path's slower decoding. DeepSpeed-Chat without its Hybrid Engine does the same.
  bool pack_inference_weights = true;
  /// The training compute dtype (--dtype): score_logprobs() runs under its autocast, so
  /// rollout log-probs are computed as the training forward computes them.
  torch::ScalarType compute_dtype = torch::kFloat32;
  /// Logs one line per generate() (its timings) at debug level (--log_level debug).
  bool log_switches = true;
};

/// Where the engine's model is.
enum class EngineMode { Training, Inference };

/// Wall seconds and sizes of one generate(): the switch into inference, the
/// generation, and the switch back.
struct SwitchTimings {
  double enter_seconds = 0;     ///< eval mode, weights packed (LoRA folded in)
  double generate_seconds = 0;  ///< prefill and decode
  double leave_seconds = 0;     ///< packed weights detached (or freed), train mode, cache released
  int64_t packed_layers = 0;    ///< linear layers in the inference layout
  int64_t lora_layers = 0;      ///< of them, with an adapter folded in
  int64_t packed_bytes = 0;     ///< bytes of the packed weights
  int64_t batch = 0;
  int64_t prompt_length = 0;  ///< T0
  int64_t new_tokens = 0;     ///< N generated columns
  int64_t kv_cache_bytes = 0;  ///< the cache this generation used
  bool cache_reused = false;   ///< the kept cache served this call
  bool cache_released = false;
  int tensor_parallel = 1;   ///< ranks that generated together
  int64_t group_batch = 0;   ///< rows the group generated (batch when alone)
  /// Under ZeRO stage 3, building the inference weights from the chunks this call (0 when
  /// the caller held them whole already): seconds, and bytes this rank received.
  double reshard_seconds = 0;
  int64_t reshard_bytes = 0;
  double total_seconds() const { return enter_seconds + generate_seconds + leave_seconds; }
  /// Into the inference layout and back.
  double switch_seconds() const { return enter_seconds + leave_seconds; }
  /// Generated tokens per second of generation (group_batch * N / generate_seconds).
  double tokens_per_second() const;
  /// "hybrid engine: enter 0.004 s (24 layers packed, bf16), generate 1.203 s (B=16, 256+256, 3404 tok/s), ..."
  std::string log_line() const;
};

/// Owns the actor and switches it between training and inference.
///
/// Resting mode is training. generate() switches to inference for its duration and
/// back, also when generation throws. The engine's calls (and a ReferencePolicy built
/// with `model_mutex()`) exclude each other through one mutex, so one engine may be
/// used from several threads; a backward pass the caller runs on forward_train()'s
/// output must not overlap generate(), which modifies fused weights in place.
class HybridEngine {
 public:
  explicit HybridEngine(models::CausalLM actor, HybridEngineOptions options = {});

  /// Generates continuations of left-padded `prompt_ids` (B, T0) with `prompt_mask`
  /// (B, T0) in inference mode. Returns plain tensors (not inference tensors, no grad):
  /// sequences (B, T0 + N) and attention_mask (B, T0 + N), usable as training inputs.
  /// Same tokens as models::generate() on the model with its adapters fused.
  /// The training weights are never modified.
  models::GenerationResult generate(const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                                    const models::GenerationOptions& options);

  /// Generates tensor-parallel with `group` from now on (DeepSpeed-Chat's
  /// --inference_tp_size): each generate() gathers the prompts of every rank of the
  /// group, the ranks run the whole batch together with their slices of the weights
  /// (models/tensor_parallel.hpp) and a shared seed (rank 0's), and each returns its
  /// own rows. Every rank of the group must call generate() equally often, with its
  /// prompts or with none (0 rows). The training layout is untouched: the slices are
  /// views of the weights every rank holds whole (ZeRO stages 0-2), or, under ZeRO stage
  /// 3, the slices each rank receives from the chunks for the call. A group of one:
  /// alone again. Throws troupe::Error when the model cannot be split that way.
  void set_tensor_parallel(models::TensorParallelRank group);
  const models::TensorParallelRank& tensor_parallel() const { return tensor_parallel_; }

  /// The actor trains under ZeRO stage 3 (`partition`, owned by its TrainEngine; null:
  /// no longer): each generate() gathers the whole model for its duration, or with a
  /// tensor-parallel group exactly this rank's slices of every layer (counted in
  /// enter_seconds and in reshard_seconds / reshard_bytes), so every rank of the
  /// data-parallel group must call generate() equally often. A caller may hold the
  /// whole model across several calls (gather_full_parameters()) when not
  /// tensor-parallel. Scoring passes need nothing: they gather layer by layer.
  void set_zero3(Zero3Partition* partition) { zero3_ = partition; }
  Zero3Partition* zero3() const { return zero3_; }

  /// Puts the model in training mode (dropout on, adapters unfused).
  void train_mode();
  /// One update in training mode under the engine's lock: zero the gradients, `loss_fn`
  /// (a scalar with autograd), backward, `optimizer.step()`. Returns the loss, detached.
  /// Holding the lock keeps a ReferencePolicy that shares the actor from turning its
  /// adapters off in the middle of the step.
  torch::Tensor train_step(torch::optim::Optimizer& optimizer,
                           const std::function<torch::Tensor(models::CausalLMImpl&)>& loss_fn);
  /// Runs `body` in training mode under the engine's lock, for updates train_step()
  /// does not cover (gradient accumulation, clipping, another optimizer type).
  void run_training(const std::function<void(models::CausalLMImpl&)>& body);
  /// Logits (B, T, V) with autograd, in training mode.
  torch::Tensor forward_train(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);
  /// Log-probs (B, T - 1) of `sequences` with autograd, in training mode (the new
  /// log-probs of the PPO actor loss).
  torch::Tensor train_logprobs(const torch::Tensor& sequences, const torch::Tensor& mask,
                               const ScoringOptions& options = {});
  /// Log-probs (B, T - 1) in eval mode without autograd (the old log-probs of the
  /// experience); the model is back in training mode afterwards.
  torch::Tensor score_logprobs(const torch::Tensor& sequences, const torch::Tensor& mask,
                               const ScoringOptions& options = {});

  EngineMode mode() const { return mode_; }
  const SwitchTimings& last_timings() const { return last_timings_; }
  /// Every generate()'s timings since construction, in order.
  const std::vector<SwitchTimings>& timing_history() const { return history_; }

  /// Bytes of the KV cache kept between generate() calls (0 when released or none).
  int64_t inference_cache_bytes() const;
  /// Bytes of the packed inference weights kept between generate() calls.
  int64_t inference_weight_bytes() const;
  /// Frees the kept KV cache and packed weights now and hands the allocator's cached
  /// blocks back.
  void release_inference_cache();

  const models::CausalLM& model() const { return model_; }
  /// The lock a ReferencePolicy sharing this actor must hold (pass it to its constructor).
  const std::shared_ptr<std::mutex>& model_mutex() const { return model_mutex_; }
  const HybridEngineOptions& options() const { return options_; }

 private:
  /// The kept cache when it fits this call (batch, capacity, dtype, device), else a
  /// freshly allocated one that is kept from now on.
  models::KVCache& cache_for(int64_t batch, int64_t positions, torch::TensorOptions tensor_options, bool& reused);
  void release_cache_locked();

  models::CausalLM model_;
  HybridEngineOptions options_;
  std::shared_ptr<std::mutex> model_mutex_ = std::make_shared<std::mutex>();
  EngineMode mode_ = EngineMode::Training;
  std::optional<models::KVCache> cache_;  // never advanced: copies of it start empty
  torch::TensorOptions cache_options_;
  SwitchTimings last_timings_;
  std::vector<SwitchTimings> history_;
  models::TensorParallelRank tensor_parallel_;
  models::InferenceLayout layout_;
  Zero3Partition* zero3_ = nullptr;
};

}  // namespace troupe::engine
