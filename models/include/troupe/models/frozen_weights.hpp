#pragma once
/// Frozen linear weights kept in the dtype they compute in.
///
/// Under bf16 autocast every linear layer casts its fp32 weight to bf16 on each pass.
/// A weight that never trains (a reward model, a reference copy, a LoRA actor's base)
/// need not keep the fp32 copy: stored in bf16 it computes exactly as autocast would
/// have computed it (the cast is the same rounding) at half the memory and without the
/// per-pass cast. Embeddings (not autocast), norms and biases stay in their dtype, so a model
/// whose frozen linears were narrowed gives the same bits under autocast as before.
#include <cstdint>

#include <torch/types.h>

#include <troupe/models/causal_lm.hpp>

namespace troupe::models {

/// Converts the weight of every linear layer whose weight does not require grad and is
/// not tied to the embedding to `dtype` (biases keep theirs); returns the bytes saved (0 when
/// `dtype` is the weights' dtype already). Trainable layers and LoRA adapters keep
/// theirs. Outside autocast such a layer casts its input to `dtype` and its output back.
int64_t store_frozen_linears_in(CausalLMImpl& model, torch::ScalarType dtype);

}  // namespace troupe::models
