#pragma once
/// Memory a role needs per device (rank), split by what holds it and when.
///
/// Model states follow the ZeRO paper (Rajbhandari et al.) with Psi parameters per
/// tensor-parallel rank and N = dp ranks, p bytes per 16/32-bit value, K optimizer
/// bytes per trainable parameter (mixed precision: fp32 master weights + Adam m and v
/// = 12; fp32 training: m and v = 8), so mixed-precision Adam costs 2 + 2 + 12 = 16
/// bytes per parameter unpartitioned:
/// - weights     p*Psi, divided by N under ZeRO-3 (moved to host with offload_params)
/// - gradients   p*Psi_t, divided by N from ZeRO-2
/// - optimizer   K*Psi_t, divided by N from ZeRO-1 (moved to host with offload_optimizer,
///               together with the gradient partition the CPU optimizer steps on)
/// Psi_t is the trainable count: with LoRA and only_optimize_lora just the adapters.
/// TP divides every tensor by tp (norms and biases are split too, which overstates
/// the saving by well under 1%).
///
/// Activations per decoder layer follow Korthikanti et al., "Reducing Activation
/// Recomputation in Large Transformer Models", for 16-bit values without sequence
/// parallelism: s*b*h*(10 + 24/t) + 5*a*s^2*b/t bytes for a 4h MLP; here the MLP part
/// is written with its real width I (4*s*b*I, or 8*s*b*I for Llama's gated MLP) and
/// everything scales by p/2 in fp32. Gradient checkpointing keeps each layer's input
/// (s*b*h*p) and recomputes one layer at a time. LM-head roles add their logits,
/// b*s*V*(p + 4)/t (the logits and an fp32 log-softmax).
///
/// The KV cache for generation is 2*L*b*(prompt + answer)*kv_heads*head_dim*p/t.
#include <cstdint>

#include <nlohmann/json.hpp>

#include <troupe/placement/model_shape.hpp>
#include <troupe/placement/topology.hpp>

namespace troupe::placement {

/// Bytes per rank. Resident parts stay while a role is idle; the others live only in
/// their phase and are released after it (the hybrid engine frees the KV cache and the
/// gathered inference weights after generation).
struct MemoryEstimate {
  int64_t parameters = 0;  ///< the whole model's count
  int64_t trainable = 0;   ///< what the optimizer updates (0 for reference, reward)
  // Resident on the device.
  int64_t weights = 0;
  int64_t optimizer = 0;
  // Training phase (actor, critic).
  int64_t gradients = 0;
  int64_t train_activations = 0;
  // ZeRO-3 working set: the modules gathered at a time in forward and backward.
  int64_t zero3_gather = 0;
  // Scoring phase (all four: old log-probs, reference log-probs, values, rewards).
  int64_t score_activations = 0;
  // Generation phase (actor): the gathered TP shard under ZeRO-3, KV cache, prefill.
  int64_t inference_weights = 0;
  int64_t kv_cache = 0;
  int64_t generation_activations = 0;
  /// Host memory per rank for offloaded state.
  int64_t host = 0;

  int64_t resident() const { return weights + optimizer; }
  int64_t training() const { return gradients + train_activations + zero3_gather; }
  int64_t scoring() const { return score_activations + zero3_gather; }
  int64_t generation() const { return inference_weights + kv_cache + generation_activations; }
  /// Resident plus the largest phase: the role alone in its process.
  int64_t peak() const;
};

/// Estimates one role. Reference and reward hold only weights (+ scoring activations).
MemoryEstimate estimate_memory(const RoleSpec& role, const ModelShape& shape, Precision precision, const BatchSpec& batch);

/// Activations of one decoder layer kept for backward (batch b, sequence s, tp ranks).
int64_t layer_activation_bytes(const ModelShape& shape, int64_t b, int64_t s, int tp, Precision precision);
/// The KV cache of b sequences of s tokens, per tp rank.
int64_t kv_cache_bytes(const ModelShape& shape, int64_t b, int64_t s, int tp, Precision precision);

nlohmann::json to_json(const MemoryEstimate& estimate);

}  // namespace troupe::placement
