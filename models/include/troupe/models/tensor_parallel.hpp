#pragma once
/// Tensor parallelism for generation (Megatron's split, as DeepSpeed's Hybrid Engine
/// uses with --inference_tp_size): the ranks of a group run one batch together, each
/// computing with its slice of every attention and MLP layer, and sum the partial
/// outputs after each block with an all-reduce. Each rank holds 1/W of the attention
/// heads in its KV cache and does 1/W of the matmuls of those layers.
///
/// Column split (dim 0 of the (out, in) weight, and the bias): q/k/v_proj, fc1,
/// gate/up_proj, GPT-2's c_fc and its fused c_attn (each of q, k, v split). Row split
/// (input features, bias added after the sum): out_proj, o_proj, fc2, down_proj,
/// GPT-2's c_proj. Embeddings, norms, the LM head and the value head stay whole, so
/// every rank ends with the same logits. OPT, GPT-2 and Llama.
#include <functional>
#include <optional>
#include <string>

#include <torch/types.h>

#include <troupe/models/causal_lm.hpp>
#include <troupe/models/linear.hpp>

namespace troupe::models {

/// This process's place in a tensor-parallel group.
struct TensorParallelRank {
  int world = 1;
  int rank = 0;
  /// In place: the element-wise sum over the group's ranks, identical on every rank.
  std::function<void(torch::Tensor&)> all_reduce_sum;
};

/// How the layer named `linear_name` ("model.layers.0.self_attn.q_proj") splits, with
/// world, rank and all-reduce left for the caller; none = kept whole on every rank.
std::optional<LinearShard> tensor_parallel_split(const std::string& linear_name);

/// Throws troupe::Error naming `where` and the config field when `config` cannot be
/// split `world` ways (heads, key/value heads or MLP width not divisible).
void check_tensor_parallel(const Config& config, int world, const std::string& where);

/// Every attention and MLP layer of `model` computes with `rank`'s slice until
/// leave_tensor_parallel(). Checks the config first. A no-op for a group of one.
void enter_tensor_parallel(CausalLMImpl& model, const TensorParallelRank& rank);
/// The same for layers whose tensors already hold only `rank`'s slice (shaped as
/// tensor_parallel_slice() says: what a ZeRO-3 reshard builds), so nothing is cut.
void enter_tensor_parallel_slices(CausalLMImpl& model, const TensorParallelRank& rank);

/// Where one parameter is cut for tensor parallelism: along `dim`, each of `blocks`
/// equal blocks split into W slices, rank r keeping the r-th slice of each, in block
/// order. dim < 0: whole on every rank.
struct ParameterSlice {
  int dim = -1;
  int blocks = 1;
  bool whole() const { return dim < 0; }
};
/// The slice of `parameter_name` (as named_parameters() names it): in a column-split
/// layer the weight along its output features, the bias and lora_B along dim 0, lora_A
/// whole; in a row-split layer the weight along its input features, lora_A along dim 1,
/// the bias and lora_B whole; every other parameter whole.
ParameterSlice tensor_parallel_slice(CausalLMImpl& model, const std::string& parameter_name);
/// Every layer whole again.
void leave_tensor_parallel(CausalLMImpl& model);

/// The config a rank's KV cache is sized by: 1/W of the key/value heads.
Config tensor_parallel_cache_config(const Config& config, int world);

}  // namespace troupe::models
