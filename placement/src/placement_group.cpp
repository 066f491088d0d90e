#include <troupe/placement/placement_group.hpp>

#include <algorithm>
#include <functional>
#include <numeric>
#include <optional>
#include <set>

#include <troupe/common/error.hpp>
#include "bytes.hpp"

namespace troupe::placement {
namespace {

bool fits(const NodeAvailability& node, const Bundle& bundle) {
  return node.cpu_threads >= bundle.cpu_threads && node.memory_bytes >= bundle.memory_bytes &&
         node.free_gpus() >= bundle.gpus;
}

/// "node1 short 1 gpu (0 free), 2.0 GiB memory (6.0 GiB free)".
std::string shortfall(const NodeAvailability& node, const Bundle& need) {
  std::vector<std::string> parts;
  if (node.cpu_threads < need.cpu_threads)
    parts.push_back(std::to_string(need.cpu_threads - node.cpu_threads) + " cpu (" + std::to_string(node.cpu_threads) + " free)");
  if (node.memory_bytes < need.memory_bytes)
    parts.push_back(format_bytes(need.memory_bytes - node.memory_bytes) + " memory (" + format_bytes(node.memory_bytes) + " free)");
  if (node.free_gpus() < need.gpus)
    parts.push_back(std::to_string(need.gpus - node.free_gpus()) + " gpu (" + std::to_string(node.free_gpus()) + " free)");
  std::string out = node.name + " short ";
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  return out;
}

/// One shortfall (or "fits") per node, "; "-separated.
std::string shortfalls(const std::vector<NodeAvailability>& nodes, const Bundle& need) {
  std::string out;
  for (size_t n = 0; n < nodes.size(); ++n) {
    if (!out.empty()) out += "; ";
    out += fits(nodes[n], need) ? nodes[n].name + " fits" : shortfall(nodes[n], need);
  }
  return out.empty() ? "no node left" : out;
}

/// Takes a bundle's counts off a node (device indices are picked only when reserving).
void consume(NodeAvailability& node, const Bundle& bundle) {
  node.cpu_threads -= bundle.cpu_threads;
  node.memory_bytes -= bundle.memory_bytes;
  for (size_t g = 0, left = static_cast<size_t>(bundle.gpus); g < node.gpu_free.size() && left > 0; ++g)
    if (node.gpu_free[g]) node.gpu_free[g] = false, --left;
}

/// Reserves a bundle on a node, picking its lowest free device indices.
void take(NodeAvailability& node, const Bundle& bundle, BundlePlacement& placement) {
  for (size_t g = 0; g < node.gpu_free.size() && static_cast<int>(placement.gpu_indices.size()) < bundle.gpus; ++g)
    if (node.gpu_free[g]) placement.gpu_indices.push_back(static_cast<int>(g));
  consume(node, bundle);
}

Bundle sum(const std::vector<Bundle>& bundles) {
  Bundle total;
  for (const auto& b : bundles) {
    total.cpu_threads += b.cpu_threads;
    total.memory_bytes += b.memory_bytes;
    total.gpus += b.gpus;
  }
  return total;
}

std::string group_prefix(const PlacementGroupSpec& spec) {
  return "placement group \"" + spec.name + "\" (" + strategy_name(spec.strategy) + ", " +
         std::to_string(spec.bundles.size()) + " bundle" + (spec.bundles.size() == 1 ? "" : "s") + ")";
}

/// Bundle order for the greedy strategies: biggest first (GPUs, then memory, then CPU),
/// so large bundles are not left without a node by small ones placed earlier.
std::vector<size_t> largest_first(const std::vector<Bundle>& bundles) {
  std::vector<size_t> order(bundles.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& x = bundles[a];
    const auto& y = bundles[b];
    if (x.gpus != y.gpus) return x.gpus > y.gpus;
    if (x.memory_bytes != y.memory_bytes) return x.memory_bytes > y.memory_bytes;
    return x.cpu_threads > y.cpu_threads;
  });
  return order;
}

/// STRICT_SPREAD as bipartite matching (bundle -> distinct node), so a heterogeneous
/// cluster is used whenever some assignment exists, not only when greedy finds it.
std::optional<std::vector<size_t>> match_distinct(const std::vector<NodeAvailability>& nodes, const std::vector<Bundle>& bundles) {
  std::vector<int> owner(nodes.size(), -1);
  std::function<bool(size_t, std::vector<bool>&)> augment = [&](size_t b, std::vector<bool>& seen) {
    for (size_t n = 0; n < nodes.size(); ++n) {
      if (seen[n] || !fits(nodes[n], bundles[b])) continue;
      seen[n] = true;
      if (owner[n] < 0 || augment(static_cast<size_t>(owner[n]), seen)) {
        owner[n] = static_cast<int>(b);
        return true;
      }
    }
    return false;
  };
  for (size_t b = 0; b < bundles.size(); ++b) {
    std::vector<bool> seen(nodes.size(), false);
    if (!augment(b, seen)) return std::nullopt;
  }
  std::vector<size_t> node_of(bundles.size());
  for (size_t n = 0; n < nodes.size(); ++n)
    if (owner[n] >= 0) node_of[static_cast<size_t>(owner[n])] = n;
  return node_of;
}

/// " after the group's 2 bundles placed before it" (empty for the first bundle).
std::string after(size_t placed) {
  return placed == 0 ? std::string()
                     : " after the group's " + std::to_string(placed) + " bundle" + (placed == 1 ? "" : "s") + " placed before it";
}

std::string no_node_for(const std::string& prefix, const PlacementGroupSpec& spec, size_t b, size_t placed,
                        const std::vector<NodeAvailability>& nodes) {
  return prefix + ": bundle " + std::to_string(b) + " " + describe(spec.bundles[b]) + " fits on no node" + after(placed) + ": " +
         shortfalls(nodes, spec.bundles[b]);
}

/// Each strategy picks a node per bundle on a copy of the free resources, or throws.
std::vector<size_t> choose_strict_pack(const std::vector<NodeAvailability>& nodes, const PlacementGroupSpec& spec,
                                       const std::string& prefix) {
  const auto total = sum(spec.bundles);
  for (size_t n = 0; n < nodes.size(); ++n)
    if (fits(nodes[n], total)) return std::vector<size_t>(spec.bundles.size(), n);
  throw Error(prefix + ": no node holds all bundles together " + describe(total) + ": " + shortfalls(nodes, total));
}

std::vector<size_t> choose_strict_spread(const std::vector<NodeAvailability>& nodes, const PlacementGroupSpec& spec,
                                         const std::string& prefix) {
  if (spec.bundles.size() > nodes.size())
    throw Error(prefix + ": needs " + std::to_string(spec.bundles.size()) + " distinct nodes, the cluster has " +
                std::to_string(nodes.size()));
  if (auto node_of = match_distinct(nodes, spec.bundles)) return *node_of;
  // Name the first bundle no node can hold; otherwise the nodes are too few for all.
  for (size_t b = 0; b < spec.bundles.size(); ++b) {
    size_t candidates = 0;
    for (const auto& node : nodes) candidates += fits(node, spec.bundles[b]);
    if (candidates == 0) throw Error(no_node_for(prefix, spec, b, 0, nodes));
  }
  throw Error(prefix + ": no assignment of the bundles to distinct nodes exists: too few nodes can hold them (" +
              shortfalls(nodes, spec.bundles.front()) + ")");
}

/// One node if any holds the whole group; otherwise fill the nodes already used first
/// and open new ones in order of most free room, so the group spans few nodes.
std::vector<size_t> choose_pack(std::vector<NodeAvailability> nodes, const PlacementGroupSpec& spec, const std::string& prefix) {
  const auto total = sum(spec.bundles);
  for (size_t n = 0; n < nodes.size(); ++n)
    if (fits(nodes[n], total)) return std::vector<size_t>(spec.bundles.size(), n);
  auto roomier = [&](size_t x, size_t y) {
    if (nodes[x].free_gpus() != nodes[y].free_gpus()) return nodes[x].free_gpus() > nodes[y].free_gpus();
    if (nodes[x].memory_bytes != nodes[y].memory_bytes) return nodes[x].memory_bytes > nodes[y].memory_bytes;
    return nodes[x].cpu_threads > nodes[y].cpu_threads;
  };
  std::vector<size_t> node_of(spec.bundles.size()), used;
  size_t placed = 0;
  for (size_t b : largest_first(spec.bundles)) {
    std::optional<size_t> target;
    for (size_t n : used)
      if (!target && fits(nodes[n], spec.bundles[b])) target = n;
    if (!target) {
      for (size_t n = 0; n < nodes.size(); ++n)
        if (std::find(used.begin(), used.end(), n) == used.end() && fits(nodes[n], spec.bundles[b]) &&
            (!target || roomier(n, *target)))
          target = n;
      if (target) used.push_back(*target);
    }
    if (!target) throw Error(no_node_for(prefix, spec, b, placed, nodes));
    consume(nodes[*target], spec.bundles[b]);
    node_of[b] = *target;
    ++placed;
  }
  return node_of;
}

/// Each bundle goes to a fitting node holding the fewest of this group's bundles.
std::vector<size_t> choose_spread(std::vector<NodeAvailability> nodes, const PlacementGroupSpec& spec, const std::string& prefix) {
  std::vector<int> count(nodes.size(), 0);
  std::vector<size_t> node_of(spec.bundles.size());
  size_t placed = 0;
  for (size_t b : largest_first(spec.bundles)) {
    std::optional<size_t> target;
    for (size_t n = 0; n < nodes.size(); ++n)
      if (fits(nodes[n], spec.bundles[b]) && (!target || count[n] < count[*target])) target = n;
    if (!target) throw Error(no_node_for(prefix, spec, b, placed, nodes));
    ++count[*target];
    consume(nodes[*target], spec.bundles[b]);
    node_of[b] = *target;
    ++placed;
  }
  return node_of;
}

}  // namespace

std::string describe(const Bundle& bundle) {
  std::vector<std::string> parts;
  if (bundle.cpu_threads) parts.push_back("cpu " + std::to_string(bundle.cpu_threads));
  if (bundle.memory_bytes) parts.push_back("memory " + format_bytes(bundle.memory_bytes));
  if (bundle.gpus) parts.push_back("gpu " + std::to_string(bundle.gpus));
  std::string out = "{";
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  return out + "}";
}

const char* strategy_name(Strategy strategy) {
  switch (strategy) {
    case Strategy::Pack: return "PACK";
    case Strategy::Spread: return "SPREAD";
    case Strategy::StrictPack: return "STRICT_PACK";
    case Strategy::StrictSpread: return "STRICT_SPREAD";
  }
  return "?";
}

Strategy parse_strategy(const std::string& name, const std::string& where) {
  for (auto s : {Strategy::Pack, Strategy::Spread, Strategy::StrictPack, Strategy::StrictSpread})
    if (name == strategy_name(s)) return s;
  throw Error(where + ": unknown strategy \"" + name + "\" (expected PACK, SPREAD, STRICT_PACK or STRICT_SPREAD)");
}

size_t PlacementGroup::node_count() const {
  std::set<size_t> used;
  for (const auto& p : placements) used.insert(p.node_index);
  return used.size();
}

int NodeAvailability::free_gpus() const { return static_cast<int>(std::count(gpu_free.begin(), gpu_free.end(), true)); }

ResourcePool::ResourcePool(const ClusterResources& cluster) {
  for (const auto& node : cluster.nodes())
    nodes_.push_back({node.name, node.cpu_threads, node.memory_available, std::vector<bool>(node.gpus.size(), true)});
}

PlacementGroup ResourcePool::reserve(const PlacementGroupSpec& spec) {
  const auto prefix = group_prefix(spec);
  if (spec.bundles.empty()) throw Error(prefix + ": has no bundles");
  for (size_t b = 0; b < spec.bundles.size(); ++b) {
    const auto& bundle = spec.bundles[b];
    if (bundle.cpu_threads < 0 || bundle.memory_bytes < 0 || bundle.gpus < 0)
      throw Error(prefix + ": bundle " + std::to_string(b) + " " + describe(bundle) + " has negative resources");
    if (bundle.cpu_threads == 0 && bundle.memory_bytes == 0 && bundle.gpus == 0)
      throw Error(prefix + ": bundle " + std::to_string(b) + " asks for no resources");
  }
  if (nodes_.empty()) throw Error(prefix + ": the cluster has no nodes");

  std::vector<size_t> node_of;
  switch (spec.strategy) {
    case Strategy::StrictPack: node_of = choose_strict_pack(nodes_, spec, prefix); break;
    case Strategy::StrictSpread: node_of = choose_strict_spread(nodes_, spec, prefix); break;
    case Strategy::Pack: node_of = choose_pack(nodes_, spec, prefix); break;
    case Strategy::Spread: node_of = choose_spread(nodes_, spec, prefix); break;
  }
  // Every bundle has a node: only now take the resources (all or nothing).
  PlacementGroup group{spec, std::vector<BundlePlacement>(spec.bundles.size())};
  for (size_t b = 0; b < spec.bundles.size(); ++b) {
    auto& placement = group.placements[b];
    placement.node_index = node_of[b];
    placement.node = nodes_[node_of[b]].name;
    take(nodes_[node_of[b]], spec.bundles[b], placement);
  }
  return group;
}

void ResourcePool::release(const PlacementGroup& group) {
  for (size_t b = 0; b < group.placements.size(); ++b) {
    auto& node = nodes_.at(group.placements[b].node_index);
    node.cpu_threads += group.spec.bundles[b].cpu_threads;
    node.memory_bytes += group.spec.bundles[b].memory_bytes;
    for (int g : group.placements[b].gpu_indices) node.gpu_free.at(static_cast<size_t>(g)) = true;
  }
}

}  // namespace troupe::placement
