/// Tensor-parallel generation: which layers split how, and switching a model's layers
/// into and out of their slices.
#include <troupe/models/tensor_parallel.hpp>

#include <troupe/common/error.hpp>

namespace troupe::models {

std::optional<LinearShard> tensor_parallel_split(const std::string& linear_name) {
  const auto dot = linear_name.rfind('.');
  const auto module = dot == std::string::npos ? linear_name : linear_name.substr(dot + 1);
  LinearShard shard;
  if (module == "c_attn") {  // GPT-2's q|k|v
    shard.fused_blocks = 3;
    return shard;
  }
  for (const char* column : {"q_proj", "k_proj", "v_proj", "fc1", "gate_proj", "up_proj", "c_fc"})
    if (module == column) return shard;
  shard.split = LinearShard::Split::Row;
  for (const char* row : {"out_proj", "o_proj", "fc2", "down_proj", "c_proj"})
    if (module == row) return shard;
  return std::nullopt;
}

void check_tensor_parallel(const Config& config, int world, const std::string& where) {
  auto fail = [&](const std::string& field, int64_t value) {
    throw Error(where + ": tensor parallelism over " + std::to_string(world) + " ranks needs " + field + " (" +
                std::to_string(value) + ") divisible by " + std::to_string(world));
  };
  if (world < 1) throw Error(where + ": tensor-parallel size " + std::to_string(world) + " must be at least 1");
  if (world == 1) return;
  if (config.num_heads % world != 0) fail("num_attention_heads", config.num_heads);
  if (config.num_kv_heads % world != 0) fail("num_key_value_heads", config.num_kv_heads);
  if (config.intermediate_size % world != 0) fail("the MLP width (ffn_dim / intermediate_size)", config.intermediate_size);
}

ParameterSlice tensor_parallel_slice(CausalLMImpl& model, const std::string& parameter_name) {
  const auto dot = parameter_name.rfind('.');
  if (dot == std::string::npos) return {};
  const auto layer = parameter_name.substr(0, dot), tensor = parameter_name.substr(dot + 1);
  const auto split = tensor_parallel_split(layer);
  if (!split) return {};
  for (auto& [name, linear] : model.linear_layers()) {
    if (name != layer) continue;
    const bool column = split->split == LinearShard::Split::Column;
    const int out_dim = linear->options().transposed() ? 1 : 0;
    if (tensor == "weight") return {column ? out_dim : 1 - out_dim, column ? split->fused_blocks : 1};
    if (tensor == "bias" && column) return {0, split->fused_blocks};
    if (tensor == "lora_B" && column) return {0, split->fused_blocks};
    if (tensor == "lora_A" && !column) return {1, 1};
    return {};
  }
  return {};
}

void enter_tensor_parallel(CausalLMImpl& model, const TensorParallelRank& rank) {
  check_tensor_parallel(model.config(), rank.world, "tensor parallelism");
  if (rank.world == 1) return;
  for (auto& [name, linear] : model.linear_layers()) {
    auto shard = tensor_parallel_split(name);
    if (!shard) continue;
    shard->world = rank.world;
    shard->rank = rank.rank;
    shard->all_reduce_sum = rank.all_reduce_sum;
    linear->set_shard(shard);
  }
  model.tensor_parallel_world_ = rank.world;
}

void enter_tensor_parallel_slices(CausalLMImpl& model, const TensorParallelRank& rank) {
  enter_tensor_parallel(model, rank);
  for (auto& [name, linear] : model.linear_layers()) {
    auto shard = linear->shard();
    if (!shard) continue;
    shard->local = true;
    linear->set_shard(shard);  // checks the slice's shape
  }
}

void leave_tensor_parallel(CausalLMImpl& model) {
  for (auto& [name, linear] : model.linear_layers()) linear->set_shard(std::nullopt);
  model.tensor_parallel_world_ = 1;
}

Config tensor_parallel_cache_config(const Config& config, int world) {
  auto local = config;
  local.num_kv_heads = config.num_kv_heads / world;
  return local;
}

}  // namespace troupe::models
