#include <troupe/placement/memory_estimate.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <vector>

#include <troupe/placement/model_tensors.hpp>

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

namespace {

/// The most AdamW state elements a rank keeps under ZeRO-1: the trainable tensors
/// (numel, whether they get a gradient) go largest first, each to the rank owning the
/// fewest elements so far (TrainEngine::set_optimizer_sharding); a tensor without a
/// gradient has an owner but no state.
int64_t largest_owner_state(std::vector<std::pair<int64_t, bool>> tensors, int64_t ranks) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<int64_t> load(static_cast<size_t>(ranks), 0), state(static_cast<size_t>(ranks), 0);
  for (const auto& [numel, has_state] : tensors) {
    const auto least = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[least] += numel;
    if (has_state) state[least] += numel;
  }
  return *std::max_element(state.begin(), state.end());
}

/// AdamW's group of a trainable parameter, or the frozen weights (zero3.hpp's flats).
enum class FlatGroup { Decay, NoDecay, Lora, Frozen };

}  // namespace

int64_t inference_layout_bytes(const ModelShape& shape, int tp, Precision precision) {
  const int64_t bytes = precision_bytes(precision);
  int64_t total = 0;
  for (const auto& linear : model_tensors(shape, Head::LanguageModel).linears) {
    int64_t n = linear.out_features, k = linear.in_features;
    if (linear.split == 0) n = ceil_div(n, tp);
    if (linear.split == 1) k = ceil_div(k, tp);
    // fp32 (P, K, 16), bf16 (P, K2, 16, 2): 16 output features a panel, K even in bf16.
    total += ceil_div(n, 16) * 16 * (bytes == 2 ? ceil_div(k, 2) * 2 : k) * bytes;
    if (linear.bias) total += 4 * n;
  }
  return total;
}

MemoryEstimate estimate_memory(const RoleSpec& role, const ModelShape& shape, Precision precision, const BatchSpec& batch,
                               Precision inference_precision, bool packed_inference) {
  MemoryEstimate m;
  const bool lm_head = role.role == Role::Actor || role.role == Role::Reference;
  const bool trains = role_trains(role.role);
  const bool half = precision != Precision::Fp32;
  const int64_t p = precision_bytes(precision);  // activations
  const int64_t n = role.dp, t = role.tp;
  const int64_t stage = n > 1 ? role.zero_stage : 0;  // one rank partitions nothing
  const auto tensors = model_tensors(shape, lm_head ? Head::LanguageModel : Head::Value, trains ? role.lora_dim : 0);
  const bool lora_only = trains && role.lora_dim > 0 && role.only_optimize_lora;
  auto trainable = [&](const ParameterTensor& q) { return trains && (!lora_only || q.lora); };
  // Frozen linear weights computed in 16 bits are kept in 16 bits; the rest is fp32.
  auto bytes_per_element = [&](const ParameterTensor& q) -> int64_t { return half && q.linear_weight && !trainable(q) ? 2 : 4; };

  int64_t weight_bytes = 0, gradient_elements = 0, optimizer_elements = 0;
  // Under ZeRO-2: the trainable elements per optimizer group (zero2.hpp's flats), and the
  // largest tensor that gets a gradient.
  std::map<FlatGroup, int64_t> group_elements;
  int64_t largest_learning = 0;
  std::vector<std::pair<int64_t, bool>> trainable_tensors;  // (numel, gets a gradient)
  // Under ZeRO-3: per decoder layer, the flats by (group, bytes per element) and their sizes.
  std::vector<std::map<std::pair<FlatGroup, int64_t>, int64_t>> flats(static_cast<size_t>(shape.layers));
  for (const auto& q : tensors.parameters) {
    m.parameters += q.numel;
    const bool trained = trainable(q), learns = trained && q.gets_gradient;
    if (trained) {
      m.trainable += q.numel;
      trainable_tensors.emplace_back(q.numel, q.gets_gradient);
      group_elements[q.lora ? FlatGroup::Lora : q.dims <= 1 ? FlatGroup::NoDecay : FlatGroup::Decay] += q.numel;
      if (learns) largest_learning = std::max(largest_learning, q.numel);
    }
    if (stage == 3 && q.layer >= 0) {
      const auto group = !trained ? FlatGroup::Frozen : q.lora ? FlatGroup::Lora : q.dims <= 1 ? FlatGroup::NoDecay : FlatGroup::Decay;
      flats[static_cast<size_t>(q.layer)][{group, bytes_per_element(q)}] += q.numel;
      continue;
    }
    // Whole on every rank; under ZeRO-3 its gradient too until the step, its moments 1/N.
    weight_bytes += q.numel * bytes_per_element(q);
    if (learns) {
      gradient_elements += q.numel;
      if (stage == 3) optimizer_elements += ceil_div(q.numel, n);
    }
  }
  if (stage == 3) {
    int64_t largest_layer = 0;
    for (const auto& layer : flats) {
      int64_t gathered = 0;
      for (const auto& [key, numel] : layer) {
        const int64_t chunk = ceil_div(numel, n);
        weight_bytes += chunk * key.second;
        gathered += chunk * n * key.second;
        if (key.first != FlatGroup::Frozen) {
          gradient_elements += chunk;
          optimizer_elements += chunk;
        }
      }
      largest_layer = std::max(largest_layer, gathered);
    }
    // The running layer and the ones whose gathers were started ahead of it.
    const int64_t whole_at_once = 1 + std::min<int64_t>(role.zero3_prefetch_layers,
                                                        std::max<int64_t>(0, static_cast<int64_t>(flats.size()) - 1));
    m.zero3_gather = ceil_div(largest_layer, t) * whole_at_once;
    if (role.role == Role::Actor) {
      // Generation gathers every layer (whole, or the generation group's slices).
      int64_t layers = 0;
      for (const auto& layer : flats)
        for (const auto& [key, numel] : layer) layers += ceil_div(numel, n) * n * key.second;
      m.inference_weights = ceil_div(layers, t * role.inference_tp_size);
    }
  } else if (stage == 2) {
    int64_t chunks = 0;
    for (const auto& [group, numel] : group_elements) chunks += ceil_div(numel, n);
    optimizer_elements = chunks;
    // A bucket filling, and the largest whole gradient: being copied into it, or the
    // buffer of a bucket of its own (a tensor larger than reduce_bucket_size).
    gradient_elements = chunks + std::min(role.reduce_bucket_size, m.trainable) + largest_learning;
  } else {
    optimizer_elements = 0;
    for (const auto& [numel, has_state] : trainable_tensors) optimizer_elements += has_state ? numel : 0;
    if (stage >= 1) optimizer_elements = largest_owner_state(trainable_tensors, n);
  }

  weight_bytes = ceil_div(weight_bytes, t);
  (role.offload_params ? m.host : m.weights) += weight_bytes;
  if (trains) {
    m.gradients = 4 * ceil_div(gradient_elements, t);
    const int64_t optimizer_bytes = 8 * ceil_div(optimizer_elements, t);
    if (role.offload_optimizer) m.host += optimizer_bytes + 4 * ceil_div(m.trainable, t * n);
    else m.optimizer = optimizer_bytes;
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
    // A generation group runs its ranks' prompts as one batch with 1/its tp of the heads.
    const int itp = role.inference_tp_size;
    if (packed_inference) m.inference_layout = inference_layout_bytes(shape, role.tp * itp, inference_precision);
    else inference_precision = Precision::Fp32;  // the cache follows the fp32 masters
    m.kv_cache = kv_cache_bytes(shape, g * itp, s, role.tp * itp, inference_precision);
    m.generation_activations = layer_activation_bytes(shape, g * itp, batch.prompt_len, role.tp * itp, precision) +
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
          {"inference_layout", m.inference_layout},
          {"kv_cache", m.kv_cache},
          {"generation_activations", m.generation_activations},
          {"host", m.host},
          {"resident", m.resident()},
          {"peak", m.peak()}};
}

}  // namespace troupe::placement
