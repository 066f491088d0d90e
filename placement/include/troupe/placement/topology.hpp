#pragma once
/// A run's topology: for each role its devices, parallel sizes, ZeRO stage, offload,
/// LoRA, and which roles share a process.
///
/// Schema (every field optional except `roles`; unknown fields are errors):
/// ```json
/// {
///   "precision": "fp16",             // fp16 | bf16 | fp32: the compute dtype (troupe's --dtype; 16 bits: autocast)
///   "inference_precision": "fp32",   // fp32 | bf16: the actor's generation copies and KV cache (--inference_dtype)
///   "inference_weights": "packed",   // packed | training: generation reads copies, or the training weights (--inference_weights)
///   "strategy": "PACK",              // how each process's devices are placed (Ray's strategies)
///   "cpu_threads_per_device": 1,     // CPU threads reserved per device (per slot on CPU)
///   "batch": {"generation_batch_size": 16, "training_batch_size": 16,   // per device
///             "prompt_len": 256, "answer_len": 256},
///   "roles": {
///     "actor":     {"model": "opt-1.3b", "devices": 8, "tp": 2, "dp": 4, "zero_stage": 3,
///                   "inference_tp_size": 1,
///                   "offload_optimizer": false, "offload_params": false,
///                   "lora_dim": 0, "only_optimize_lora": true, "gradient_checkpointing": true},
///     "critic":    {"model": "opt-350m", "devices": 8, "zero_stage": 3},
///     "reference": {"devices": 8, "zero_stage": 3},
///     "reward":    {"model": "opt-350m", "devices": 8}
///   },
///   "colocate": [["actor", "reference"], ["critic", "reward"]]
/// }
/// ```
/// Roles: actor (required), critic, reference, reward. `devices` defaults to 1, `tp` to
/// 1, `dp` to devices / tp, and dp * tp must equal devices. `tp` is the tensor-parallel
/// size of both the training and the generation layout; ZeRO partitions over the dp
/// ranks of each TP slice. `model` is a preset name
/// (model_shape.hpp) or a Hugging Face directory; a role without one takes the
/// `--model` given to the planner (reference defaults to the actor's, reward to the
/// critic's). `offload_params` needs ZeRO-3 and `offload_optimizer` ZeRO 1-3, as in
/// DeepSpeed. `colocate` lists sets of roles sharing one process and its devices; a
/// role in no set runs alone; absent `colocate` means all roles in one process, and
/// `[]` means every role separate. Colocated roles need the same device count.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/placement/placement_group.hpp>

namespace troupe::placement {

enum class Role { Actor, Critic, Reference, Reward };
const char* role_name(Role role);  ///< "actor", "critic", "reference", "reward"
/// True for the roles that train in step 3 (actor, critic).
bool role_trains(Role role);

enum class Precision { Fp16, Bf16, Fp32 };
const char* precision_name(Precision precision);
int precision_bytes(Precision precision);

struct RoleSpec {
  Role role = Role::Actor;
  std::string model;  ///< preset or directory; empty = the planner's default
  int devices = 1;
  int dp = 1;
  int tp = 1;
  /// Actor only: the tensor-parallel size of the generation layout (DeepSpeed-Chat's
  /// --inference_tp_size). Groups of this many ranks generate their prompts together,
  /// each with 1/size of the attention and MLP weights; training keeps the dp x tp
  /// layout. Divides `devices`.
  int inference_tp_size = 1;
  int zero_stage = 0;
  /// zero_stage 2: gradient elements per bucket reduced during the backward (DeepSpeed's
  /// reduce_bucket_size; engine/zero2.hpp). A rank holds about one bucket of whole gradients.
  int64_t reduce_bucket_size = 500'000'000;
  /// zero_stage 3: decoder layers gathered ahead of the running one, their transfer
  /// overlapping its compute (0 = none; engine/zero3.hpp).
  int zero3_prefetch_layers = 1;
  bool offload_optimizer = false;
  bool offload_params = false;
  int lora_dim = 0;
  bool only_optimize_lora = true;  ///< with lora_dim > 0: train only the adapters
  bool gradient_checkpointing = false;
};

/// Per-device batch sizes and sequence lengths of the step-3 iteration.
struct BatchSpec {
  int64_t generation_batch_size = 16;
  int64_t training_batch_size = 16;
  int64_t prompt_len = 256;
  int64_t answer_len = 256;
  int64_t sequence_len() const { return prompt_len + answer_len; }
};

struct Topology {
  std::string source = "topology";  ///< file name for messages
  Precision precision = Precision::Fp16;
  Precision inference_precision = Precision::Fp32;
  /// "inference_weights": "packed" (true) or "training" (false, needs fp32 inference_precision).
  bool packed_inference_weights = true;
  /// Step 3's --async_rollout (not a field of the file; `troupe plan --async_rollout`
  /// sets it): the actor's rollout copy, its weights and its generation, sits beside
  /// every other phase of the actor's process.
  bool async_rollout = false;
  Strategy strategy = Strategy::Pack;
  int cpu_threads_per_device = 1;
  BatchSpec batch;
  std::vector<RoleSpec> roles;               ///< in the order actor, critic, reference, reward
  std::vector<std::vector<Role>> colocate;   ///< every role in exactly one set (singletons added)

  const RoleSpec* find(Role role) const;
  /// "actor+reference"
  static std::string set_name(const std::vector<Role>& set);
};

/// Parses and validates; errors name `source` and the field, e.g.
/// `topology.json: roles.critic.tp: 3 does not divide device count 4`.
Topology parse_topology(const nlohmann::json& json, const std::string& source);
Topology load_topology(const std::filesystem::path& path);
/// All four roles on one device each, colocated in one process.
Topology default_topology();
nlohmann::json to_json(const Topology& topology);

}  // namespace troupe::placement
