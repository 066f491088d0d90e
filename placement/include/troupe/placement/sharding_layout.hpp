#pragma once
/// How one parameter's elements are laid out over ranks: replicated, a ZeRO shard, or
/// a tensor-parallel partition. Pure functions over shapes; no tensors.
///
/// - Replicated: every rank holds the whole tensor.
/// - ZeRO shard (DeepSpeed ZeRO-3): the tensor is flattened (row-major), padded with
///   zeros to a multiple of the world size, and rank r holds the contiguous chunk
///   [r*c, (r+1)*c) with c = ceil(numel / world); padding is never real data.
/// - TP partition along `dim` (Megatron): rank r holds the slice with indices
///   [r*k, (r+1)*k) along dim, k = shape[dim] / world, stored contiguously row-major.
///   With `blocks` b > 1 (GPT-2's fused q|k|v) dim holds b equal blocks and rank r
///   holds that slice of each block, in block order (k = shape[dim] / (b * world)).
///   For nn.Linear weights (out, in), column-parallel layers (q/k/v, fc1, gate/up)
///   split dim 0 (and their bias); row-parallel layers (o/out_proj, fc2, down) split
///   dim 1 and keep their bias replicated.
#include <cstdint>
#include <string>
#include <vector>

namespace troupe::placement {

enum class LayoutKind { Replicated, ZeroShard, TpPartition };

struct ShardingLayout {
  LayoutKind kind = LayoutKind::Replicated;
  int world = 1;
  int dim = 0;     ///< TpPartition only
  int blocks = 1;  ///< TpPartition only: equal blocks along dim, each split over the ranks

  static ShardingLayout replicated(int world);
  static ShardingLayout zero_shard(int world);
  static ShardingLayout tp_partition(int world, int dim, int blocks = 1);
};

/// "replicated x4", "zero-shard x8", "tp x2 (dim 1)".
std::string describe(const ShardingLayout& layout);

/// A run of a rank's local buffer and where it sits in the flattened full tensor.
struct Segment {
  int64_t global_offset = 0;
  int64_t local_offset = 0;
  int64_t count = 0;
};

int64_t numel(const std::vector<int64_t>& shape);

/// Throws troupe::Error when the layout cannot hold `shape` (TP dim out of range or
/// not divisible by the world size, non-positive world); `what` names the parameter.
void check_layout(const ShardingLayout& layout, const std::vector<int64_t>& shape, const std::string& what);

/// Elements in rank's local buffer, padding included (ZeRO: ceil(numel / world)).
int64_t local_size(const ShardingLayout& layout, const std::vector<int64_t>& shape, int rank);

/// The real (non-padding) elements rank holds, as segments sorted by global offset.
std::vector<Segment> local_segments(const ShardingLayout& layout, const std::vector<int64_t>& shape, int rank);

/// The TP layout of a Hugging Face parameter by its name (OPT, Llama): column-parallel
/// q/k/v_proj, fc1, gate/up_proj (weight and bias on dim 0); row-parallel out_proj,
/// o_proj, fc2, down_proj (weight on dim 1, bias replicated); everything else
/// (embeddings, norms, LM head, GPT-2's fused Conv1D) replicated.
ShardingLayout tp_layout_for(const std::string& parameter_name, const std::vector<int64_t>& shape, int tp);

}  // namespace troupe::placement
