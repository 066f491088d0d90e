#pragma once
/// What a node offers: CPU threads, host memory and CUDA devices with their memory.
///
/// A cluster description (`--cluster FILE`, or what node agents report) is JSON:
/// ```json
/// {"nodes": [
///   {"name": "node0", "cpu_threads": 64, "memory": "512GiB", "memory_available": "480GiB",
///    "gpus": [{"memory": "80GiB", "memory_free": "79GiB"}, {"memory": "80GiB"}]},
///   {"name": "node1", "cpu_threads": 32, "memory": "256GiB",
///    "gpus": {"count": 8, "memory": "40GiB"}}
/// ]}
/// ```
/// Sizes are bytes or strings with units (see bytes.hpp). `memory_available` and
/// `memory_free` default to the totals. `gpus` is a list (one entry per device, index
/// = position) or a shorthand `{count, memory, memory_free}`; absent means no GPUs.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace troupe::placement {

/// One CUDA device of a node.
struct GpuDevice {
  int index = 0;
  int64_t memory_total = 0;
  int64_t memory_free = 0;  ///< what a new process may still allocate
};

/// One machine's resources.
struct NodeResources {
  std::string name;
  int cpu_threads = 0;           ///< threads this process may run on (affinity)
  int64_t memory_total = 0;      ///< host memory, bytes
  int64_t memory_available = 0;  ///< host memory a new process may use, bytes
  std::vector<GpuDevice> gpus;
};

/// The nodes a plan may use. Node names are unique.
class ClusterResources {
 public:
  ClusterResources() = default;
  explicit ClusterResources(std::vector<NodeResources> nodes);

  /// Adds a node; throws troupe::Error on a duplicate or empty name or negative sizes.
  void add_node(NodeResources node);

  const std::vector<NodeResources>& nodes() const { return nodes_; }
  const NodeResources& node(const std::string& name) const;
  bool empty() const { return nodes_.empty(); }
  /// True when any node has a CUDA device: then devices are GPUs, otherwise CPU slots.
  bool has_gpus() const;

  /// Parses the JSON above; `source` (a file name) prefixes errors.
  static ClusterResources from_json(const nlohmann::json& json, const std::string& source);
  static ClusterResources load(const std::string& path);
  nlohmann::json to_json() const;

 private:
  std::vector<NodeResources> nodes_;
};

/// MemTotal and MemAvailable from /proc/meminfo text (bytes).
struct MemInfo {
  int64_t total = 0;
  int64_t available = 0;
};
MemInfo parse_meminfo(const std::string& text, const std::string& source);

/// A cgroup memory limit file (v2 `memory.max` or v1 `memory.limit_in_bytes`):
/// nullopt for "max" or the v1 "unlimited" sentinel (near 2^63).
std::optional<int64_t> parse_cgroup_limit(const std::string& text);

/// The machine this process runs on: CPU threads from sched_getaffinity, host memory
/// from /proc/meminfo capped by the cgroup limit when smaller, CUDA devices when built
/// with CUDA and a device is present.
NodeResources detect_local_node(const std::string& name = "node0");

/// CUDA devices with total and free memory (empty without CUDA or devices).
std::vector<GpuDevice> detect_cuda_devices();

}  // namespace troupe::placement
