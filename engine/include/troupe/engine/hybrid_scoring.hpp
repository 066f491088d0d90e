#pragma once
/// Scoring of generated sequences for step 3: per-token log-probs of a policy, per-token
/// values of a critic, the end score of a reward model, and the reference policy that
/// reuses the actor's weights where it can.
///
/// The free functions follow the caller's grad mode: under torch::NoGradGuard they
/// build no graph (experience making), otherwise they are differentiable (training).
/// They do not change the model's train/eval mode; the caller (or HybridEngine) does.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <torch/types.h>

#include <troupe/models/causal_lm.hpp>

namespace troupe::engine {

struct ScoringOptions {
  /// Rows per chunk of the LM head's logits; 0 = as many as fit in `chunk_bytes`.
  int64_t rows_per_chunk = 0;
  /// Budget for one chunk's logits, counted as fp32 (rows * (T - 1) * V * 4 bytes), when
  /// `rows_per_chunk` is 0; at least one row is taken.
  int64_t chunk_bytes = int64_t{256} << 20;
  /// The first column of sequence_logprobs' (B, T - 1) result that is scored. Step 3
  /// sets it to prompt_length - 1: PPO reads only the answer's columns, so the LM head
  /// (a third of an OPT-125m's FLOPs) runs for the answer positions alone; the columns
  /// before it are 0.
  int64_t first_position = 0;
};

/// What a rank with no rows runs instead of a pass when `model`'s layers are
/// partitioned over ranks (it has layer hooks, ZeRO stage 3): a one-token forward
/// without autograd, so it joins the other ranks' per-layer gathers. Nothing otherwise.
/// The scoring functions below call it themselves for an empty batch (B = 0).
void join_partitioned_pass(models::CausalLMImpl& model);

/// log_softmax(logits[:, :-1])[sequences[:, 1:]] as (B, T - 1) fp32, from logits
/// (B, T, V) of any float dtype. Computed by kernels::gather_logprobs as (logit of the
/// token) - logsumexp, read in the logits' dtype: no fp32 copy or log-softmax exists.
torch::Tensor logprobs_from_logits(const torch::Tensor& logits, const torch::Tensor& sequences,
                                   const ScoringOptions& options = {});

/// The log-prob of every next token of `sequences` (B, T) under `model`, masked by
/// `mask` (B, T) (1 = real token; left-padded prompt, right-padded answer): (B, T - 1)
/// fp32, column t scoring token t + 1. The LM head runs per chunk of rows too, so the
/// full (B, T, V) logits are never materialised.
torch::Tensor sequence_logprobs(models::CausalLMImpl& model, const torch::Tensor& sequences, const torch::Tensor& mask,
                                const ScoringOptions& options = {});

/// The critic's value of every position but the last: values[:, :-1], (B, T - 1).
torch::Tensor sequence_values(models::CausalLMImpl& critic, const torch::Tensor& sequences, const torch::Tensor& mask);

/// Per row, the position the reward model scores (B) int64: the last real token of the
/// answer that starts at `prompt_length`, i.e. the position before the first pad after
/// the prompt (the last prompt token when the answer is empty), as DeepSpeed-Chat's
/// `forward_value(prompt_length=...)` picks it.
torch::Tensor end_positions(const torch::Tensor& mask, int64_t prompt_length);

/// The reward model's score of each sequence: its value at end_positions() (B).
torch::Tensor end_scores(models::CausalLMImpl& reward_model, const torch::Tensor& sequences, const torch::Tensor& mask,
                         int64_t prompt_length);

/// How a ReferencePolicy holds its weights.
enum class ReferenceKind {
  SharedBase,  ///< the actor itself with its LoRA adapters turned off for the forward
  FrozenCopy,  ///< a deep copy of the actor, requires_grad off
};

/// The frozen reference policy of PPO (the actor as it was when step 3 started).
///
/// When the actor has LoRA adapters that are still zero and its base weights are frozen
/// (`only_optimize_lora`), the reference *is* the actor's base: `logprobs()` turns the
/// adapters off for its forward and back on after, so no weight is duplicated.
/// Otherwise it is a deep copy (adapters folded in) with requires_grad off.
///
/// Thread-safety: with a shared base, a reference forward changes the actor's adapter
/// switches and train/eval mode for its duration. It must not overlap a forward of the
/// actor. Pass the HybridEngine's `model_mutex()` so the two exclude each other; code
/// that runs the actor outside the engine must not overlap reference scoring.
class ReferencePolicy {
 public:
  /// `compute_dtype` bf16 (the run's --dtype): forwards run under bf16 autocast, as the
  /// actor's do, and a copy keeps its linear weights in bf16 (frozen_weights.hpp), which
  /// computes the same bits at half the memory.
  explicit ReferencePolicy(models::CausalLM actor, std::shared_ptr<std::mutex> model_mutex = nullptr,
                           torch::ScalarType compute_dtype = torch::kFloat32);

  /// Log-probs (B, T - 1) of `sequences` (B, T) under the reference, in eval mode and
  /// without autograd. Throws troupe::Error when the shared actor's adapters are fused
  /// into its weights or its base weights have become trainable.
  torch::Tensor logprobs(const torch::Tensor& sequences, const torch::Tensor& mask, const ScoringOptions& options = {});

  /// Moves a frozen copy to `device` (DeepSpeed-Chat's --offload_reference_model puts it
  /// on the CPU); logprobs() then moves its inputs there and the result back to the
  /// inputs' device. Returns false for a shared base, which is the actor and stays.
  bool offload_to(const torch::Device& device);

  ReferenceKind kind() const { return kind_; }
  /// The model the reference runs: the actor itself when shared, else the copy.
  const models::CausalLM& model() const { return model_; }
  /// Why this kind was chosen, for logs ("LoRA actor with frozen base: shared").
  const std::string& reason() const { return reason_; }

  /// Bytes of parameters the reference does not duplicate (0 for a copy).
  int64_t saved_parameter_bytes() const { return saved_bytes_; }
  /// Bytes of parameters the reference holds on its own (0 when shared).
  int64_t own_parameter_bytes() const { return own_bytes_; }
  /// One line for the CLI: kind, reason, bytes saved or held.
  std::string memory_summary() const;

 private:
  models::CausalLM model_;
  std::shared_ptr<std::mutex> model_mutex_;
  ReferenceKind kind_ = ReferenceKind::FrozenCopy;
  torch::ScalarType compute_dtype_ = torch::kFloat32;
  std::string reason_;
  int64_t saved_bytes_ = 0;
  int64_t own_bytes_ = 0;
};

/// Whether a ReferencePolicy of `actor` would share it (its base, adapters off) rather
/// than copy it.
bool reference_can_share(models::CausalLMImpl& actor);

/// A frozen deep copy of `model` (same device and dtypes, LoRA adapters folded into the
/// weights, no adapters of its own, requires_grad off, eval mode).
models::CausalLM frozen_copy(models::CausalLMImpl& model);

}  // namespace troupe::engine
