#pragma once
/// Hugging Face model directories in and out: config.json + safetensors weights with
/// Hugging Face parameter names.
#include <filesystem>
#include <optional>

#include <torch/types.h>

#include <troupe/models/causal_lm.hpp>
#include <troupe/models/safetensors.hpp>

namespace troupe::models {

struct LoadOptions {
  torch::Device device = torch::kCPU;
  /// Parameter dtype; float32 when unset (as transformers loads by default).
  std::optional<torch::ScalarType> dtype;
  /// Adds a value head (critic, reward model); loaded when the checkpoint has
  /// `v_head.weight`, freshly initialised otherwise.
  bool value_head = false;
};

/// Builds the model of `dir/config.json` and loads its weights. Throws troupe::Error
/// naming the directory and the tensor for a missing, unexpected or misshapen weight.
CausalLM load_pretrained(const std::filesystem::path& dir, const LoadOptions& options = {});

/// Copies `tensors` into the model's parameters by Hugging Face name; `source` names
/// them in errors.
void load_weights(CausalLMImpl& model, const TensorMap& tensors, const std::string& source);

/// The weights as a Hugging Face save holds them: LoRA adapters folded in, a tied
/// `lm_head.weight` omitted, `v_head.weight` included when present.
TensorMap hf_state_dict(CausalLMImpl& model);

/// Writes config.json, generation_config.json and the weights (sharded above
/// `max_shard_bytes`) into `dir`; each file goes through a temporary name.
void save_pretrained(CausalLMImpl& model, const std::filesystem::path& dir, int64_t max_shard_bytes = int64_t{5} << 30);

}  // namespace troupe::models
