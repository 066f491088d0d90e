#pragma once
/// Memory a role needs per device (rank), split by what holds it and when, for troupe's
/// engine (engine/train_engine.hpp, engine/zero3.hpp, engine/hybrid_engine.hpp).
///
/// Model states, with Psi parameters per tensor-parallel rank, Psi_t of them trainable
/// (with LoRA and only_optimize_lora just the adapters) and N data-parallel ranks:
/// - weights     fp32, 4 bytes each: troupe's parameters are the fp32 masters, and
///               `precision` bf16 computes under autocast. Frozen linear weights (a
///               reference, a reward model, a LoRA base) are kept in 16 bits under a
///               16-bit precision (models/frozen_weights.hpp).
/// - gradients   fp32, 4*Psi_t, at their peak: the end of the backward. Stages 0-1 hold
///               the whole gradient then (they reduce after the backward). ZeRO-2
///               (engine/zero2.hpp) holds its 1/N chunk of each optimizer group's flat, one
///               bucket being filled (reduce_bucket_size elements, at most Psi_t) and the
///               largest whole gradient (being copied into it, or a bucket of its own).
/// - optimizer   AdamW's two fp32 moments, 8*Psi_t; ZeRO-1 keeps, on each rank, the
///               state of the whole parameters it owns (the largest rank's share of a
///               greedy split by size, as TrainEngine::set_optimizer_sharding deals them);
///               ZeRO-2 the state of its 1/N chunk of each group's flat (every trainable
///               element, one that gets no gradient too).
/// Under ZeRO-3 each decoder layer's parameters, per optimizer group, are one flat split
/// into N padded chunks: a rank holds 1/N of the layers' weights, gradients and moments.
/// The parameters outside the layers (embeddings, final norm, heads) stay whole on every
/// rank, and so do their gradients until the step reduces them; their moments are 1/N.
/// The working set is one layer gathered whole at a time, plus the zero3_prefetch_layers
/// whose gathers run ahead of it (zero3_gather). With one rank
/// nothing is partitioned, whatever the stage. TP divides every tensor by tp.
///
/// Activations per decoder layer follow Korthikanti et al., "Reducing Activation
/// Recomputation in Large Transformer Models", for 16-bit values without sequence
/// parallelism: s*b*h*(10 + 24/t) + 5*a*s^2*b/t bytes for a 4h MLP; here the MLP part
/// is written with its real width I (4*s*b*I, or 8*s*b*I for Llama's gated MLP) and
/// everything scales by p/2 in fp32. Gradient checkpointing keeps each layer's input
/// (s*b*h*p) and recomputes one layer at a time. LM-head roles add their logits,
/// b*s*V*(p + 4)/t (the logits and an fp32 log-softmax).
///
/// Generation (the actor), in `inference_precision` (--inference_dtype): the inference
/// layout packs a copy of every linear layer's weight, the LM head included, padded to
/// 16 output features, plus an fp32 copy of its bias (models/inference_layout.hpp); the
/// KV cache is 2*L*b*(prompt + answer)*kv_heads*head_dim*bytes/t. A generation group of
/// inference_tp_size ranks runs its ranks' prompts as one batch with 1/its size of the
/// heads and of the layers' linear layers. Under ZeRO-3 the layers are gathered whole (or
/// as this rank's tensor-parallel slices) in fp32 for the call (inference_weights).
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
  // Generation phase (actor): the gathered TP shard under ZeRO-3, the packed copies of
  // the inference layout, KV cache, prefill.
  int64_t inference_weights = 0;
  int64_t inference_layout = 0;
  int64_t kv_cache = 0;
  int64_t generation_activations = 0;
  /// Host memory per rank for offloaded state.
  int64_t host = 0;

  int64_t resident() const { return weights + optimizer; }
  int64_t training() const { return gradients + train_activations + zero3_gather; }
  int64_t scoring() const { return score_activations + zero3_gather; }
  int64_t generation() const { return inference_weights + inference_layout + kv_cache + generation_activations; }
  /// Resident plus the largest phase: the role alone in its process.
  int64_t peak() const;
};

/// Estimates one role. Reference and reward hold only weights (+ scoring activations).
/// `packed_inference` false (--inference_weights training): generation computes with the
/// training weights, so no packed copies, and the KV cache is fp32 as the masters.
MemoryEstimate estimate_memory(const RoleSpec& role, const ModelShape& shape, Precision precision, const BatchSpec& batch,
                               Precision inference_precision = Precision::Fp32, bool packed_inference = true);

/// Activations of one decoder layer kept for backward (batch b, sequence s, tp ranks).
int64_t layer_activation_bytes(const ModelShape& shape, int64_t b, int64_t s, int tp, Precision precision);
/// The inference layout of `shape`'s actor: every linear layer packed in `precision`
/// (the decoder layers' ones cut to 1/tp), biases in fp32.
int64_t inference_layout_bytes(const ModelShape& shape, int tp, Precision precision);
/// The KV cache of b sequences of s tokens, per tp rank.
int64_t kv_cache_bytes(const ModelShape& shape, int64_t b, int64_t s, int tp, Precision precision);

nlohmann::json to_json(const MemoryEstimate& estimate);

}  // namespace troupe::placement
