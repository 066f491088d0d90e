#pragma once
/// Placement groups: gang reservations of resource bundles across a cluster's nodes,
/// with Ray's four strategies.
///
/// As in Ray, a bundle must fit on one node, and a group is reserved atomically: all
/// of its bundles or none. Strategies (ray.util.placement_group):
/// - PACK: as few nodes as possible (best effort; spills to more nodes when needed).
/// - SPREAD: distinct nodes as evenly as possible (best effort; shares nodes when the
///   cluster has fewer nodes than bundles).
/// - STRICT_PACK: every bundle on one node, or the group fails.
/// - STRICT_SPREAD: every bundle on a different node, or the group fails.
#include <cstdint>
#include <string>
#include <vector>

#include <troupe/placement/resources.hpp>

namespace troupe::placement {

/// One unit of a gang reservation.
struct Bundle {
  int cpu_threads = 0;
  int64_t memory_bytes = 0;  ///< host memory
  int gpus = 0;
};
/// "{cpu 1, memory 2.0 GiB, gpu 1}" (zero parts left out).
std::string describe(const Bundle& bundle);

enum class Strategy { Pack, Spread, StrictPack, StrictSpread };
const char* strategy_name(Strategy strategy);  ///< "PACK", ...
/// Parses "PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"; `where` names the field.
Strategy parse_strategy(const std::string& name, const std::string& where);

struct PlacementGroupSpec {
  std::string name;  ///< used in messages, e.g. "actor+reference"
  Strategy strategy = Strategy::Pack;
  std::vector<Bundle> bundles;
};

/// Where one bundle landed.
struct BundlePlacement {
  size_t node_index = 0;
  std::string node;
  std::vector<int> gpu_indices;  ///< the node's devices reserved for this bundle
};

/// A reserved group; placements[i] belongs to spec.bundles[i].
struct PlacementGroup {
  PlacementGroupSpec spec;
  std::vector<BundlePlacement> placements;
  /// Distinct nodes used.
  size_t node_count() const;
};

/// What is still free on one node.
struct NodeAvailability {
  std::string name;
  int cpu_threads = 0;
  int64_t memory_bytes = 0;
  std::vector<bool> gpu_free;  ///< by device index
  int free_gpus() const;
};

/// The free resources of a cluster; reserve() takes groups out, release() gives back.
class ResourcePool {
 public:
  explicit ResourcePool(const ClusterResources& cluster);

  /// Places every bundle of `spec` by its strategy and reserves them, or reserves
  /// nothing and throws troupe::Error naming the group, the bundle, each node and
  /// what it is short of.
  PlacementGroup reserve(const PlacementGroupSpec& spec);
  void release(const PlacementGroup& group);

  const std::vector<NodeAvailability>& nodes() const { return nodes_; }

 private:
  std::vector<NodeAvailability> nodes_;
};

}  // namespace troupe::placement
