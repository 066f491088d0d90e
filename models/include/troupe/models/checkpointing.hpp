#pragma once
/// Activation (gradient) checkpointing of one layer: LibTorch's C++ API has no
/// torch.utils.checkpoint, so this is its reentrant variant as a custom autograd function.
#include <functional>

#include <torch/types.h>

namespace troupe::models {

/// A layer as a function of its hidden state. Everything else it reads (mask, rotary
/// tables, the module itself) is captured, by value: the backward calls it again after
/// the pass that built it has returned.
using LayerFn = std::function<torch::Tensor(const torch::Tensor&)>;

/// Runs `layer` on `input` keeping none of its activations, only `input`; the backward
/// runs the layer again with grad enabled and the random-number state of the first run
/// (same dropout masks), accumulates the gradients of the layer's parameters directly
/// and passes the input's gradient on.
///
/// `parameters` are the layer's trainable tensors: the output requires grad when the
/// input or any of them does, as it would without checkpointing (with frozen embeddings,
/// as under LoRA, the input alone does not). Without grad mode the layer runs directly.
///
/// `recompute` (optional) brackets the backward's work on a layer whose weights live
/// elsewhere between passes (ZeRO stage 3): `before` runs before the recomputation (gather
/// the weights), `after` once the layer's parameter gradients are complete (reduce-scatter
/// them, free the weights).
struct RecomputeHooks {
  std::function<void()> before, after;
};
torch::Tensor run_checkpointed(const LayerFn& layer, const torch::Tensor& input, at::TensorList parameters = {},
                               RecomputeHooks recompute = {});

}  // namespace troupe::models
