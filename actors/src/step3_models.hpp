#pragma once
/// Loading the model of a step-3 role: weights from a Hugging Face directory, then
/// LoRA, gradient checkpointing and dropout as the run asks. The controller and the
/// worker processes build the same roles the same way.
#include <filesystem>
#include <optional>
#include <string>

#include <torch/types.h>

#include <troupe/models/causal_lm.hpp>

namespace troupe::actors {

struct RoleModelOptions {
  bool value_head = false;  ///< critic and reward model
  int64_t lora_dim = 0;     ///< 0 = no adapters
  std::string lora_module_name;
  bool only_optimize_lora = false;
  bool gradient_checkpointing = false;
  std::optional<double> dropout;  ///< unset = the config's
  torch::Device device = torch::kCPU;
  /// The run's compute dtype (--dtype). bf16: the linear weights that do not train (a
  /// LoRA model's base under only_optimize_lora) are kept in bf16 (frozen_weights.hpp).
  torch::ScalarType compute_dtype = torch::kFloat32;
};

/// The model of `role` ("actor", "critic", ...) from `dir`; throws troupe::Error naming
/// the role when `dir` is empty.
models::CausalLM load_role_model(const std::filesystem::path& dir, const RoleModelOptions& options, const std::string& role);

}  // namespace troupe::actors
