#pragma once
/// The inference layout: what the decode kernels read, built from the training
/// weights at each switch into generation (DeepSpeed's Hybrid Engine does the same
/// with its inference containers). Every linear layer, the LM head included, gets a
/// packed copy of the weight it computes with now (its tensor-parallel slice when the
/// model is split, the LoRA adapter folded in when enabled) in the inference dtype.
/// The training weights are never modified, so leaving needs no unfuse and no backup.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <torch/types.h>

#include <troupe/kernels/decode_linear.hpp>
#include <troupe/models/causal_lm.hpp>

namespace troupe::models {

class InferenceLayout {
 public:
  /// Packs every linear layer of `model` in `dtype` (kFloat32 or kBFloat16) and
  /// attaches the copies: passes in eval mode without autograd compute with them
  /// until leave(). Copies kept from an earlier enter() of the same shapes are
  /// refilled in place. Throws troupe::Error for another dtype.
  void enter(CausalLMImpl& model, torch::ScalarType dtype);
  /// Detaches the copies: the model computes with its training weights again. The
  /// copies stay allocated for the next enter() until release().
  void leave(CausalLMImpl& model);
  /// Frees the copies (after leave()).
  void release();

  bool attached() const { return attached_; }
  /// Bytes of the packed copies held.
  int64_t bytes() const;
  /// Layers packed by the last enter().
  int64_t layers() const { return static_cast<int64_t>(packed_.size()); }
  /// Layers whose adapter the last enter() folded in.
  int64_t lora_layers() const { return lora_layers_; }

 private:
  std::vector<std::shared_ptr<kernels::PackedLinear>> packed_;  // in linear_layers() order
  bool attached_ = false;
  int64_t lora_layers_ = 0;
};

/// Enters a temporary layout for its lifetime when `model` has none attached (a
/// generate() on a model nobody switched), in the dtype given.
class ScopedInferenceLayout {
 public:
  ScopedInferenceLayout(CausalLMImpl& model, torch::ScalarType dtype);
  ~ScopedInferenceLayout();
  ScopedInferenceLayout(const ScopedInferenceLayout&) = delete;
  ScopedInferenceLayout& operator=(const ScopedInferenceLayout&) = delete;

 private:
  CausalLMImpl& model_;
  std::unique_ptr<InferenceLayout> layout_;
};

/// Whether every linear layer of `model` has a packed copy attached.
bool has_inference_layout(CausalLMImpl& model);

/// The dtype generation packs weights and keeps its KV cache in: `requested` when
/// given, else bf16 for a bf16 model and fp32 otherwise.
torch::ScalarType resolve_inference_dtype(CausalLMImpl& model, std::optional<torch::ScalarType> requested);

/// The inference dtype named by a flag value: "fp32" or "bf16"; throws troupe::Error
/// naming `where` otherwise.
torch::ScalarType inference_dtype_from_name(const std::string& name, const std::string& where);

}  // namespace troupe::models
