#include <troupe/placement/resharding.hpp>

#include <algorithm>

#include <troupe/common/error.hpp>

namespace troupe::placement {
namespace {

/// Intersects two segment lists sorted by global offset (two pointers), emitting one
/// transfer per overlap.
void intersect(const std::vector<Segment>& src, const std::vector<Segment>& dst, int src_rank, int dst_rank,
               std::vector<Transfer>& out) {
  size_t i = 0, j = 0;
  while (i < src.size() && j < dst.size()) {
    const auto& a = src[i];
    const auto& b = dst[j];
    const int64_t begin = std::max(a.global_offset, b.global_offset);
    const int64_t end = std::min(a.global_offset + a.count, b.global_offset + b.count);
    if (end > begin)
      out.push_back({src_rank, dst_rank, a.local_offset + (begin - a.global_offset), b.local_offset + (begin - b.global_offset),
                     end - begin});
    (a.global_offset + a.count <= b.global_offset + b.count) ? ++i : ++j;
  }
}

int64_t transfer_elements(const std::vector<Transfer>& transfers, int src, int dst) {
  int64_t total = 0;
  for (const auto& t : transfers)
    if (t.src_rank == src && t.dst_rank == dst) total += t.count;
  return total;
}

/// Appends `t`, or lengthens the last transfer when `t` continues it on both sides (one message).
void append_merged(std::vector<Transfer>& transfers, const Transfer& t) {
  if (!transfers.empty()) {
    auto& last = transfers.back();
    if (last.dst_rank == t.dst_rank && last.src_rank == t.src_rank && last.src_offset + last.count == t.src_offset &&
        last.dst_offset + last.count == t.dst_offset) {
      last.count += t.count;
      return;
    }
  }
  transfers.push_back(t);
}

}  // namespace

int64_t ReshardPlan::elements(int src, int dst) const { return transfer_elements(transfers, src, dst); }

ReshardPlan plan_reshard(const std::vector<int64_t>& shape, const ShardingLayout& from, const ShardingLayout& to,
                         const std::string& what) {
  check_layout(from, shape, what + " (source)");
  check_layout(to, shape, what + " (destination)");
  ReshardPlan plan{shape, from, to, {}};
  std::vector<std::vector<Segment>> sources(static_cast<size_t>(from.world));
  for (int s = 0; s < from.world; ++s) sources[static_cast<size_t>(s)] = local_segments(from, shape, s);

  for (int d = 0; d < to.world; ++d) {
    const auto wanted = local_segments(to, shape, d);
    std::vector<Transfer> mine;
    if (from.kind == LayoutKind::Replicated) {
      const int s = d % from.world;
      intersect(sources[static_cast<size_t>(s)], wanted, s, d, mine);
    } else {
      for (int s = 0; s < from.world; ++s) intersect(sources[static_cast<size_t>(s)], wanted, s, d, mine);
    }
    std::sort(mine.begin(), mine.end(), [](const Transfer& a, const Transfer& b) { return a.dst_offset < b.dst_offset; });
    for (const auto& t : mine) append_merged(plan.transfers, t);
  }
  return plan;
}

int64_t FlatReshardPlan::elements(int src, int dst) const { return transfer_elements(transfers, src, dst); }

FlatReshardPlan plan_flat_reshard(const FlatShards& from, const std::vector<ShardingLayout>& to, const std::string& what) {
  if (from.world < 1 || from.chunk < 0) throw Error(what + ": a flat needs a positive world and a chunk size");
  if (from.shapes.size() != from.offsets.size() || from.shapes.size() != to.size())
    throw Error(what + ": " + std::to_string(from.shapes.size()) + " shapes, " + std::to_string(from.offsets.size()) +
                " offsets and " + std::to_string(to.size()) + " layouts");
  FlatReshardPlan plan;
  plan.from_world = from.world;
  plan.to_world = to.empty() ? 1 : to.front().world;
  int64_t end = 0;
  for (size_t i = 0; i < to.size(); ++i) {
    const auto name = what + " tensor " + std::to_string(i);
    check_layout(to[i], from.shapes[i], name);
    if (to[i].world != plan.to_world) throw Error(name + ": " + describe(to[i]) + " in a plan over " + std::to_string(plan.to_world) + " ranks");
    if (to[i].kind == LayoutKind::ZeroShard) throw Error(name + ": a flat reshards into replicated or tensor-parallel layouts");
    if (from.offsets[i] < end) throw Error(name + ": offset " + std::to_string(from.offsets[i]) + " overlaps the tensor before it");
    end = from.offsets[i] + numel(from.shapes[i]);
  }
  if (end > from.chunk * from.world)
    throw Error(what + ": " + std::to_string(end) + " elements do not fit " + std::to_string(from.world) + " chunks of " +
                std::to_string(from.chunk));

  // Source rank s: one segment, its chunk (clipped to the real elements).
  std::vector<std::vector<Segment>> sources(static_cast<size_t>(from.world));
  for (int s = 0; s < from.world; ++s) {
    const int64_t begin = std::min(end, s * from.chunk), stop = std::min(end, (s + 1) * from.chunk);
    if (stop > begin) sources[static_cast<size_t>(s)].push_back({begin, 0, stop - begin});
  }
  plan.local_sizes.assign(static_cast<size_t>(plan.to_world), 0);
  plan.local_offsets.assign(static_cast<size_t>(plan.to_world), {});
  for (int d = 0; d < plan.to_world; ++d) {
    // The destination's segments in flat coordinates, tensor after tensor.
    std::vector<Segment> wanted;
    int64_t& local = plan.local_sizes[static_cast<size_t>(d)];
    for (size_t i = 0; i < to.size(); ++i) {
      plan.local_offsets[static_cast<size_t>(d)].push_back(local);
      for (auto segment : local_segments(to[i], from.shapes[i], d)) {
        segment.global_offset += from.offsets[i];
        segment.local_offset += local;
        wanted.push_back(segment);
      }
      local += local_size(to[i], from.shapes[i], d);
    }
    for (int s = 0; s < from.world; ++s) {
      std::vector<Transfer> mine;
      intersect(sources[static_cast<size_t>(s)], wanted, s, d, mine);
      for (const auto& t : mine) append_merged(plan.transfers, t);
    }
  }
  return plan;
}

}  // namespace troupe::placement
