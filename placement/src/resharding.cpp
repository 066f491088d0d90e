#include <troupe/placement/resharding.hpp>

#include <algorithm>

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

}  // namespace

int64_t ReshardPlan::elements(int src, int dst) const {
  int64_t total = 0;
  for (const auto& t : transfers)
    if (t.src_rank == src && t.dst_rank == dst) total += t.count;
  return total;
}

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
    for (const auto& t : mine) {
      auto& last = plan.transfers;
      if (!last.empty() && last.back().dst_rank == t.dst_rank && last.back().src_rank == t.src_rank &&
          last.back().src_offset + last.back().count == t.src_offset && last.back().dst_offset + last.back().count == t.dst_offset)
        last.back().count += t.count;  // contiguous on both sides: one message
      else
        last.push_back(t);
    }
  }
  return plan;
}

}  // namespace troupe::placement
