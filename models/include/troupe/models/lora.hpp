#pragma once
/// LoRA over a model's linear layers: which layers get adapters, fusing them into the
/// weights for generation, and training only the adapters.
#include <string>
#include <vector>

#include <troupe/models/causal_lm.hpp>

namespace troupe::models {

struct LoraOptions {
  int64_t rank = 8;
  /// Scale = alpha / rank (DeepSpeed-Chat's `lora_scaling` is alpha, default 1).
  double alpha = 1.0;
  double dropout = 0.0;
  /// A layer gets an adapter when its name contains this (DeepSpeed-Chat's
  /// `--lora_module_name`, e.g. "decoder.layers."); empty = every layer but the heads.
  std::string module_filter;
};

/// Adds adapters and returns the names of the adapted layers. Throws troupe::Error
/// when the filter matches no layer (naming the filter and a few layer names).
std::vector<std::string> apply_lora(CausalLMImpl& model, const LoraOptions& options);

/// Folds every adapter into its weight, or takes it back out.
void fuse_lora(CausalLMImpl& model);
void unfuse_lora(CausalLMImpl& model);

/// Turns every adapter's contribution on or off (off = the base model).
void set_lora_enabled(CausalLMImpl& model, bool enabled);

/// Freezes everything but the adapters (DeepSpeed-Chat's `--only_optimize_lora`).
void only_optimize_lora(CausalLMImpl& model);

}  // namespace troupe::models
