#pragma once
/// The parameter tensors and linear layers of a decoder as troupe builds it, from its
/// shape: what memory planning partitions (ZeRO) and packs (the inference layout).
#include <cstdint>
#include <vector>

#include <troupe/placement/model_shape.hpp>

namespace troupe::placement {

/// One parameter tensor.
struct ParameterTensor {
  int64_t numel = 0;
  int dims = 1;               ///< 1 for biases and norm weights (AdamW's no-decay group)
  int64_t layer = -1;         ///< its decoder layer; -1 outside them (embeddings, final norm, heads)
  bool linear_weight = false; ///< the weight of a linear layer (kept in 16 bits when frozen under bf16)
  bool lora = false;          ///< a LoRA adapter (lora_A or lora_B)
  /// False for a value model's untied LM head: no loss reaches it, so it gets no
  /// gradient and AdamW keeps no state for it (it still has an owner under ZeRO-1/2).
  bool gets_gradient = true;
};

/// One linear layer: the inference layout packs its weight (adapters folded in) and
/// copies its bias. A tied LM head is a layer without a parameter of its own.
struct LinearLayer {
  int64_t out_features = 0;  ///< N
  int64_t in_features = 0;   ///< K
  bool bias = false;
  int64_t layer = -1;        ///< its decoder layer; -1 outside them
  /// How tensor-parallel generation cuts it: 0 = output features (q/k/v, fc1, gate/up),
  /// 1 = input features (out_proj, fc2, down), -1 = whole (heads, projections).
  int split = -1;
};

struct ModelTensors {
  std::vector<ParameterTensor> parameters;
  std::vector<LinearLayer> linears;
};

/// The tensors of `shape` with `head`, and with LoRA adapters of rank `lora_dim` (0 =
/// none) on every linear layer of the decoder layers. The parameters' numel sums to
/// parameter_count(shape, head) + lora_parameter_count(shape, lora_dim).
ModelTensors model_tensors(const ModelShape& shape, Head head, int64_t lora_dim = 0);

}  // namespace troupe::placement
