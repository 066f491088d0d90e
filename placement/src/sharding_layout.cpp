#include <troupe/placement/sharding_layout.hpp>

#include <algorithm>

#include <troupe/common/error.hpp>
#include "bytes.hpp"

namespace troupe::placement {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + ")";
}

}  // namespace

ShardingLayout ShardingLayout::replicated(int world) { return {LayoutKind::Replicated, world, 0, 1}; }
ShardingLayout ShardingLayout::zero_shard(int world) { return {LayoutKind::ZeroShard, world, 0, 1}; }
ShardingLayout ShardingLayout::tp_partition(int world, int dim, int blocks) {
  return {LayoutKind::TpPartition, world, dim, blocks};
}

std::string describe(const ShardingLayout& layout) {
  switch (layout.kind) {
    case LayoutKind::Replicated: return "replicated x" + std::to_string(layout.world);
    case LayoutKind::ZeroShard: return "zero-shard x" + std::to_string(layout.world);
    case LayoutKind::TpPartition:
      return "tp x" + std::to_string(layout.world) + " (dim " + std::to_string(layout.dim) +
             (layout.blocks > 1 ? ", " + std::to_string(layout.blocks) + " blocks" : "") + ")";
  }
  return "?";
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

void check_layout(const ShardingLayout& layout, const std::vector<int64_t>& shape, const std::string& what) {
  if (layout.world < 1) throw Error(what + ": " + describe(layout) + ": world size must be at least 1");
  for (auto d : shape)
    if (d < 0) throw Error(what + ": shape " + shape_string(shape) + " has a negative dimension");
  if (layout.kind != LayoutKind::TpPartition) return;
  if (layout.dim < 0 || layout.dim >= static_cast<int>(shape.size()))
    throw Error(what + ": " + describe(layout) + ": shape " + shape_string(shape) + " has no dim " + std::to_string(layout.dim));
  if (layout.blocks < 1) throw Error(what + ": " + describe(layout) + ": blocks must be at least 1");
  if (shape[static_cast<size_t>(layout.dim)] % (static_cast<int64_t>(layout.blocks) * layout.world) != 0)
    throw Error(what + ": " + describe(layout) + ": dim " + std::to_string(layout.dim) + " of shape " + shape_string(shape) +
                " does not split evenly over " + std::to_string(layout.world) + " ranks" +
                (layout.blocks > 1 ? " in " + std::to_string(layout.blocks) + " blocks" : ""));
}

int64_t local_size(const ShardingLayout& layout, const std::vector<int64_t>& shape, int rank) {
  (void)rank;  // every rank's buffer has the same size in all three layouts
  switch (layout.kind) {
    case LayoutKind::Replicated: return numel(shape);
    case LayoutKind::ZeroShard: return ceil_div(numel(shape), layout.world);
    case LayoutKind::TpPartition: return numel(shape) / layout.world;
  }
  return 0;
}

std::vector<Segment> local_segments(const ShardingLayout& layout, const std::vector<int64_t>& shape, int rank) {
  const int64_t n = numel(shape);
  std::vector<Segment> out;
  if (n == 0) return out;
  switch (layout.kind) {
    case LayoutKind::Replicated:
      out.push_back({0, 0, n});
      break;
    case LayoutKind::ZeroShard: {
      const int64_t chunk = ceil_div(n, layout.world);
      const int64_t begin = std::min(n, rank * chunk), end = std::min(n, (rank + 1) * chunk);
      if (end > begin) out.push_back({begin, 0, end - begin});  // the rest of the chunk is padding
      break;
    }
    case LayoutKind::TpPartition: {
      const auto d = static_cast<size_t>(layout.dim);
      int64_t outer = 1, inner = 1;
      for (size_t i = 0; i < d; ++i) outer *= shape[i];
      for (size_t i = d + 1; i < shape.size(); ++i) inner *= shape[i];
      const int64_t block = shape[d] / layout.blocks, k = block / layout.world;
      const int64_t run = k * inner;
      int64_t local = 0;
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t b = 0; b < layout.blocks; ++b, local += run) {
          const Segment s{(o * shape[d] + b * block) * inner + rank * run, local, run};
          if (!out.empty() && out.back().global_offset + out.back().count == s.global_offset &&
              out.back().local_offset + out.back().count == s.local_offset)
            out.back().count += s.count;  // world 1: one run
          else if (run > 0)
            out.push_back(s);
        }
      break;
    }
  }
  return out;
}

ShardingLayout tp_layout_for(const std::string& name, const std::vector<int64_t>& shape, int tp) {
  const bool weight = ends_with(name, ".weight");
  const bool bias = ends_with(name, ".bias");
  const auto module = name.substr(0, name.size() - (weight ? 7 : bias ? 5 : 0));
  auto is = [&](std::initializer_list<const char*> names) {
    for (const auto* n : names)
      if (ends_with(module, std::string(".") + n) || module == n) return true;
    return false;
  };
  ShardingLayout layout = ShardingLayout::replicated(tp);
  if ((weight || bias) && is({"q_proj", "k_proj", "v_proj", "fc1", "gate_proj", "up_proj"})) layout = ShardingLayout::tp_partition(tp, 0);
  else if (weight && is({"out_proj", "o_proj", "fc2", "down_proj"})) layout = ShardingLayout::tp_partition(tp, 1);
  check_layout(layout, shape, name);
  return layout;
}

}  // namespace troupe::placement
