#pragma once
/// The linear layer every decoder uses: Hugging Face parameter names, optional GPT-2
/// `Conv1D` storage, an optional tied weight, and built-in LoRA.
#include <functional>
#include <memory>
#include <optional>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <troupe/kernels/decode_linear.hpp>

namespace troupe::models {

struct LinearOptions {
  LinearOptions(int64_t in_features, int64_t out_features) : in_features_(in_features), out_features_(out_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  TORCH_ARG(bool, bias) = true;
  /// GPT-2's Conv1D keeps the weight as (in, out); Linear as (out, in).
  TORCH_ARG(bool, transposed) = false;
  /// Share this weight (tied embeddings) instead of creating one.
  TORCH_ARG(std::optional<torch::Tensor>, tied_weight) = std::nullopt;
};

/// Megatron-style tensor parallelism: the slice of a layer one rank computes with.
/// Column split: output features [r*k, (r+1)*k) of the weight and the bias, so the
/// rank outputs its k features; with `fused_blocks` n > 1 (GPT-2's q|k|v in one
/// layer) the rank takes that slice of each of the n equal blocks, in block order.
/// Row split: input features [r*k, (r+1)*k), so the rank reads its k input features
/// and outputs a partial sum that `all_reduce_sum` completes before the (whole) bias
/// is added. The slices are views of the full weight, whatever its storage ((out, in)
/// or GPT-2's (in, out)): entering and leaving the layout copies nothing.
struct LinearShard {
  enum class Split { Column, Row };
  Split split = Split::Column;
  int world = 1;
  int rank = 0;
  int fused_blocks = 1;
  /// The layer's tensors already hold only this rank's slice (what the Hybrid Engine's
  /// ZeRO-3 reshard builds): a column split's weight, bias and lora_B, a row split's
  /// weight and lora_A; nothing is cut from them.
  bool local = false;
  /// Row split: sums the ranks' partial outputs in place, the same on every rank.
  std::function<void(torch::Tensor&)> all_reduce_sum;
};

/// y = x W^T + b (+ scale * dropout(x) A^T B^T when LoRA is on).
/// LoRA parameters are `lora_A` (r, in) and `lora_B` (out, r); B starts at zero so an
/// enabled adapter changes nothing until trained.
class LinearImpl : public torch::nn::Module {
 public:
  explicit LinearImpl(LinearOptions options);

  torch::Tensor forward(const torch::Tensor& x);
  /// act(forward(x)), the activation fused into the kernel's epilogue when the layer
  /// computes with its inference copy.
  torch::Tensor forward_activated(const torch::Tensor& x, kernels::Activation activation);

  /// Adds a rank-`rank` adapter with scale `alpha / rank`.
  void enable_lora(int64_t rank, double alpha, double dropout = 0.0);
  bool has_lora() const { return lora_A.defined(); }
  /// The adapter's rank r (0 without one), alpha (scale = alpha / r) and dropout.
  int64_t lora_rank() const { return has_lora() ? lora_A.size(0) : 0; }
  double lora_alpha() const { return lora_alpha_; }
  double lora_dropout() const { return lora_dropout_; }
  /// Folds the adapter into the weight (W += scale * B A) for fast inference.
  void fuse_lora();
  /// Undoes fuse_lora().
  void unfuse_lora();
  bool lora_fused() const { return lora_fused_; }
  /// Turns the adapter's contribution off without removing it (the reference model
  /// is the actor's base with adapters disabled).
  void set_lora_enabled(bool enabled) { lora_enabled_ = enabled; }
  bool lora_enabled() const { return lora_enabled_; }

  /// The weight as (out, in), whatever the storage; with the adapter folded in when
  /// `with_lora` (what a Hugging Face save holds).
  torch::Tensor effective_weight(bool with_lora) const;
  /// The adapter's delta scale * B A as the weight is stored.
  torch::Tensor lora_delta() const;

  const LinearOptions& options() const { return options_; }

  /// Computes with rank's slice from now on (none: the whole layer again). Throws
  /// troupe::Error when the split features (of each fused block) do not divide by the
  /// world size, or for a row split without an all-reduce.
  void set_shard(std::optional<LinearShard> shard);
  const std::optional<LinearShard>& shard() const { return shard_; }

  /// The inference layout's packed copy of this layer (inference_layout.hpp): its
  /// weight as it computes now (its tensor-parallel slice, the adapter folded in), or
  /// null. Passes in eval mode without autograd compute with it.
  void set_packed(std::shared_ptr<const kernels::PackedLinear> packed) { packed_ = std::move(packed); }
  const std::shared_ptr<const kernels::PackedLinear>& packed() const { return packed_; }
  /// This pass computes with the packed copy.
  bool uses_packed() const;
  /// The (out_k, in_k) weight this layer computes with now, and its bias (the rank's
  /// slice when sharded; a row split's bias is added after the all-reduce, so none),
  /// adapter folded in when enabled: what the inference layout packs.
  std::pair<torch::Tensor, torch::Tensor> weight_to_pack() const;

  torch::Tensor weight;  // (out, in), or (in, out) when transposed
  torch::Tensor bias;    // (out) or undefined
  torch::Tensor lora_A;  // (r, in) or undefined
  torch::Tensor lora_B;  // (out, r) or undefined

 private:
  LinearOptions options_;
  double lora_scale_ = 0.0;
  double lora_alpha_ = 0.0;
  double lora_dropout_ = 0.0;
  bool lora_fused_ = false;
  bool lora_enabled_ = true;
  std::optional<LinearShard> shard_;
  std::shared_ptr<const kernels::PackedLinear> packed_;

  torch::Tensor sharded_forward(const torch::Tensor& x);
  torch::Tensor packed_forward(const torch::Tensor& x, kernels::Activation activation);
};
TORCH_MODULE(Linear);

}  // namespace troupe::models
