#pragma once
/// Resharding plans: which element ranges each source rank sends to each destination
/// rank to turn one sharding layout of a parameter into another (ZeRO-3 shards to TP
/// partitions for generation, and back; replicated to either; ZeRO over a different
/// world size). Pure functions; apply_reshard() runs a plan on plain vectors, the way
/// a transport runs it on device buffers.
#include <cstdint>
#include <string>
#include <vector>

#include <troupe/common/error.hpp>
#include <troupe/placement/sharding_layout.hpp>

namespace troupe::placement {

/// Copy `count` elements from source rank's local buffer at src_offset into the
/// destination rank's local buffer at dst_offset. Rank numbers index each layout's
/// own group (source rank r of the ZeRO group, destination rank r of the TP group).
struct Transfer {
  int src_rank = 0;
  int dst_rank = 0;
  int64_t src_offset = 0;
  int64_t dst_offset = 0;
  int64_t count = 0;
};

struct ReshardPlan {
  std::vector<int64_t> shape;
  ShardingLayout from;
  ShardingLayout to;
  std::vector<Transfer> transfers;  ///< sorted by (dst_rank, dst_offset); adjacent runs merged
  /// Elements source rank `src` sends to destination rank `dst` (a transport's message size).
  int64_t elements(int src, int dst) const;
};

/// Every real element of every destination buffer is written exactly once; padding
/// is never sent. A replicated source serves destination rank r from rank
/// r % world, so equal worlds copy locally. `what` names the parameter in errors.
ReshardPlan plan_reshard(const std::vector<int64_t>& shape, const ShardingLayout& from, const ShardingLayout& to,
                         const std::string& what = "parameter");

/// DeepSpeed's ZeRO-3 flat buffer: several tensors laid end to end (tensor i at
/// `offsets[i]`, increasing), padded with zeros to world * chunk elements; source rank s
/// holds the chunk [s * chunk, (s + 1) * chunk).
struct FlatShards {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> offsets;
  int64_t chunk = 0;
  int world = 1;
};

/// What a flat's source ranks send so that each destination rank t gets its local
/// buffer (in `to[i]`, all over the same world) of every tensor i, laid end to end in
/// tensor order: the Hybrid Engine's ZeRO-3 -> tensor-parallel reshard.
struct FlatReshardPlan {
  int from_world = 1;
  int to_world = 1;
  /// src_offset is into the source rank's chunk, dst_offset into the destination's
  /// concatenation. Sorted by (dst_rank, src_rank, dst_offset); adjacent runs merged.
  std::vector<Transfer> transfers;
  std::vector<int64_t> local_sizes;                 ///< [dst] elements of the concatenation
  std::vector<std::vector<int64_t>> local_offsets;  ///< [dst][tensor] where tensor i starts in it
  /// Elements source rank `src` sends to destination rank `dst`.
  int64_t elements(int src, int dst) const;
};

/// Every element of every destination buffer is written exactly once, from the one
/// source chunk that holds it; padding is never sent. Throws troupe::Error naming
/// `what` when a layout cannot hold its tensor or the flat is inconsistent.
FlatReshardPlan plan_flat_reshard(const FlatShards& from, const std::vector<ShardingLayout>& to,
                                  const std::string& what = "flat");

/// The local buffer of `rank` in `layout`, cut from the full row-major tensor (ZeRO
/// padding filled with T{}).
template <class T>
std::vector<T> extract_shard(const ShardingLayout& layout, const std::vector<int64_t>& shape, int rank, const std::vector<T>& full) {
  if (static_cast<int64_t>(full.size()) != numel(shape)) throw Error("extract_shard: full tensor size does not match its shape");
  std::vector<T> local(static_cast<size_t>(local_size(layout, shape, rank)), T{});
  for (const auto& s : local_segments(layout, shape, rank))
    std::copy(full.begin() + s.global_offset, full.begin() + s.global_offset + s.count, local.begin() + s.local_offset);
  return local;
}

/// Runs `plan` on source buffers (one per source rank) and returns the destination
/// buffers (one per destination rank, padding T{}).
template <class T>
std::vector<std::vector<T>> apply_reshard(const ReshardPlan& plan, const std::vector<std::vector<T>>& sources) {
  if (static_cast<int>(sources.size()) != plan.from.world)
    throw Error("apply_reshard: " + std::to_string(sources.size()) + " source buffers for " + describe(plan.from));
  for (int r = 0; r < plan.from.world; ++r)
    if (static_cast<int64_t>(sources[static_cast<size_t>(r)].size()) != local_size(plan.from, plan.shape, r))
      throw Error("apply_reshard: source rank " + std::to_string(r) + " buffer has the wrong size");
  std::vector<std::vector<T>> out(static_cast<size_t>(plan.to.world));
  for (int r = 0; r < plan.to.world; ++r) out[static_cast<size_t>(r)].assign(static_cast<size_t>(local_size(plan.to, plan.shape, r)), T{});
  for (const auto& t : plan.transfers) {
    const auto& src = sources[static_cast<size_t>(t.src_rank)];
    std::copy(src.begin() + t.src_offset, src.begin() + t.src_offset + t.count, out[static_cast<size_t>(t.dst_rank)].begin() + t.dst_offset);
  }
  return out;
}

}  // namespace troupe::placement
