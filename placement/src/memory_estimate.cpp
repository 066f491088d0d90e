#include <troupe/placement/memory_estimate.hpp>

#include <algorithm>

#include "bytes.hpp"

namespace troupe::placement {
namespace {

int64_t logits_bytes(const ModelShape& shape, int64_t b, int64_t s, int tp, Precision precision) {
  return ceil_div(b * s * shape.vocab * (precision_bytes(precision) + 4), tp);
}

}  // namespace

int64_t MemoryEstimate::peak() const { return resident() + std::max({training(), scoring(), generation()}); }

int64_t layer_activation_bytes(const ModelShape& shape, int64_t b, int64_t s, int tp, Precision precision) {
  const int64_t sbh = s * b * shape.hidden;
  const int64_t mlp = (shape.architecture == Architecture::Llama ? 8 : 4) * s * b * shape.intermediate;
  const int64_t bytes16 = 10 * sbh + ceil_div(8 * sbh + mlp + 5 * shape.heads * s * s * b, tp);
  return bytes16 * precision_bytes(precision) / 2;
}

int64_t kv_cache_bytes(const ModelShape& shape, int64_t b, int64_t s, int tp, Precision precision) {
  return 2 * shape.layers * b * s * ceil_div(shape.kv_heads, tp) * shape.head_dim * precision_bytes(precision);
}

MemoryEstimate estimate_memory(const RoleSpec& role, const ModelShape& shape, Precision precision, const BatchSpec& batch) {
  MemoryEstimate m;
  const bool lm_head = role.role == Role::Actor || role.role == Role::Reference;
  const bool trains = role_trains(role.role);
  const int64_t p = precision_bytes(precision);
  const int64_t k = precision == Precision::Fp32 ? 8 : 12;
  const int64_t n = role.dp, t = role.tp, stage = role.zero_stage;
  const int64_t lora = trains ? lora_parameter_count(shape, role.lora_dim) : 0;

  m.parameters = parameter_count(shape, lm_head ? Head::LanguageModel : Head::Value) + lora;
  if (trains) m.trainable = (role.lora_dim > 0 && role.only_optimize_lora) ? lora : m.parameters;
  const int64_t psi = ceil_div(m.parameters, t);   // per TP rank
  const int64_t psi_t = ceil_div(m.trainable, t);

  const int64_t weight_bytes = p * (stage == 3 ? ceil_div(psi, n) : psi);
  (role.offload_params ? m.host : m.weights) += weight_bytes;
  if (trains) {
    m.gradients = p * (stage >= 2 ? ceil_div(psi_t, n) : psi_t);
    const int64_t optimizer_bytes = k * (stage >= 1 ? ceil_div(psi_t, n) : psi_t);
    if (role.offload_optimizer) m.host += optimizer_bytes + p * ceil_div(psi_t, n);
    else m.optimizer = optimizer_bytes;
  }
  if (stage == 3) {
    // DeepSpeed gathers module by module and prefetches the next: about two decoder
    // layers, or the token embedding when that is larger.
    const int64_t embed = shape.vocab * (shape.embed_dim ? shape.embed_dim : shape.hidden);
    m.zero3_gather = p * ceil_div(std::max(2 * layer_parameter_count(shape), embed), t);
  }

  const int64_t s = batch.sequence_len();
  if (trains) {
    const int64_t b = batch.training_batch_size;
    const int64_t layer = layer_activation_bytes(shape, b, s, role.tp, precision);
    m.train_activations = role.gradient_checkpointing ? shape.layers * s * b * shape.hidden * p + layer : shape.layers * layer;
    if (lm_head) m.train_activations += logits_bytes(shape, b, s, role.tp, precision);
  }
  const int64_t g = batch.generation_batch_size;
  m.score_activations = layer_activation_bytes(shape, g, s, role.tp, precision);
  if (lm_head) m.score_activations += logits_bytes(shape, g, s, role.tp, precision);
  if (role.role == Role::Actor) {
    // Under ZeRO-3 the hybrid engine gathers the generation layout's shard (1/its tp of
    // the training TP shard); otherwise generation reuses the training weights in place.
    // A generation group runs its ranks' prompts as one batch with 1/its tp of the heads.
    const int64_t itp = role.inference_tp_size;
    if (stage == 3) m.inference_weights = p * ceil_div(psi, itp);
    m.kv_cache = kv_cache_bytes(shape, g * itp, s, role.tp * static_cast<int>(itp), precision);
    m.generation_activations = layer_activation_bytes(shape, g * itp, batch.prompt_len, role.tp * static_cast<int>(itp), precision) +
                               logits_bytes(shape, g * itp, 1, role.tp, precision);
  }
  return m;
}

nlohmann::json to_json(const MemoryEstimate& m) {
  return {{"parameters", m.parameters},
          {"trainable", m.trainable},
          {"weights", m.weights},
          {"optimizer", m.optimizer},
          {"gradients", m.gradients},
          {"train_activations", m.train_activations},
          {"zero3_gather", m.zero3_gather},
          {"score_activations", m.score_activations},
          {"inference_weights", m.inference_weights},
          {"kv_cache", m.kv_cache},
          {"generation_activations", m.generation_activations},
          {"host", m.host},
          {"resident", m.resident()},
          {"peak", m.peak()}};
}

}  // namespace troupe::placement
