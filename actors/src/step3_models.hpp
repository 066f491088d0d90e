#pragma once
/// Loading the model of a step-3 role: weights from a Hugging Face directory, then
/// LoRA, gradient checkpointing and dropout as the run asks. The controller and the
/// worker processes build the same roles the same way.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <torch/types.h>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/models/causal_lm.hpp>
#include <troupe/models/partitioned_init.hpp>

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

/// A role's model and, when it was built partitioned, what that left on this rank.
struct RankModel {
  models::CausalLM model;
  std::shared_ptr<models::PartitionedLayers> partitioned;  ///< for engine::Zero3Partition; null when built whole
};
/// load_role_model for a rank of `group`: when the group partitions the parameters (ZeRO
/// stage 3 on several ranks) the model is built inside a models::PartitionedInit, so this
/// rank reads only its chunks of the decoder layers and never holds them whole.
RankModel load_rank_model(const std::filesystem::path& dir, const RoleModelOptions& options, const std::string& role,
                          const DataParallel* group);

}  // namespace troupe::actors
