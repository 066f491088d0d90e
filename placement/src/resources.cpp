#include <troupe/placement/resources.hpp>

#include <set>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include "bytes.hpp"

namespace troupe::placement {
namespace {

void check_keys(const nlohmann::json& object, const std::set<std::string>& allowed, const std::string& where) {
  for (const auto& [key, value] : object.items())
    if (!allowed.count(key)) throw Error(where + "." + key + ": unknown field");
}

GpuDevice parse_gpu(const nlohmann::json& json, int index, const std::string& where) {
  if (!json.is_object()) throw Error(where + ": expected an object like {\"memory\": \"80GiB\"}");
  check_keys(json, {"memory", "memory_free"}, where);
  if (!json.contains("memory")) throw Error(where + ".memory: missing");
  GpuDevice gpu;
  gpu.index = index;
  gpu.memory_total = parse_bytes(json.at("memory"), where + ".memory");
  gpu.memory_free = json.contains("memory_free") ? parse_bytes(json.at("memory_free"), where + ".memory_free")
                                                 : gpu.memory_total;
  if (gpu.memory_free > gpu.memory_total) throw Error(where + ".memory_free: exceeds memory");
  return gpu;
}

}  // namespace

ClusterResources::ClusterResources(std::vector<NodeResources> nodes) {
  for (auto& node : nodes) add_node(std::move(node));
}

void ClusterResources::add_node(NodeResources node) {
  if (node.name.empty()) throw Error("cluster: a node needs a name");
  for (const auto& other : nodes_)
    if (other.name == node.name) throw Error("cluster: node name \"" + node.name + "\" appears twice");
  if (node.cpu_threads < 0 || node.memory_total < 0 || node.memory_available < 0)
    throw Error("cluster: node " + node.name + " has negative resources");
  for (size_t i = 0; i < node.gpus.size(); ++i) node.gpus[i].index = static_cast<int>(i);
  nodes_.push_back(std::move(node));
}

const NodeResources& ClusterResources::node(const std::string& name) const {
  for (const auto& node : nodes_)
    if (node.name == name) return node;
  throw Error("cluster: no node named \"" + name + "\"");
}

bool ClusterResources::has_gpus() const {
  for (const auto& node : nodes_)
    if (!node.gpus.empty()) return true;
  return false;
}

ClusterResources ClusterResources::from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object() || !json.contains("nodes") || !json.at("nodes").is_array())
    throw Error(source + ": nodes: expected {\"nodes\": [...]}");
  if (json.at("nodes").empty()) throw Error(source + ": nodes: the cluster has no nodes");
  check_keys(json, {"nodes"}, source + ":");
  ClusterResources cluster;
  int i = 0;
  for (const auto& item : json.at("nodes")) {
    const auto where = source + ": nodes[" + std::to_string(i++) + "]";
    if (!item.is_object()) throw Error(where + ": expected an object");
    check_keys(item, {"name", "cpu_threads", "memory", "memory_available", "gpus"}, where);
    NodeResources node;
    node.name = item.value("name", "node" + std::to_string(i - 1));
    if (!item.contains("cpu_threads") || !item.at("cpu_threads").is_number_integer() || item.at("cpu_threads").get<int>() < 1)
      throw Error(where + ".cpu_threads: expected a positive integer");
    node.cpu_threads = item.at("cpu_threads").get<int>();
    if (!item.contains("memory")) throw Error(where + ".memory: missing");
    node.memory_total = parse_bytes(item.at("memory"), where + ".memory");
    node.memory_available = item.contains("memory_available")
                                ? parse_bytes(item.at("memory_available"), where + ".memory_available")
                                : node.memory_total;
    if (node.memory_available > node.memory_total) throw Error(where + ".memory_available: exceeds memory");
    if (item.contains("gpus")) {
      const auto& gpus = item.at("gpus");
      if (gpus.is_array()) {
        for (size_t g = 0; g < gpus.size(); ++g)
          node.gpus.push_back(parse_gpu(gpus[g], static_cast<int>(g), where + ".gpus[" + std::to_string(g) + "]"));
      } else if (gpus.is_object()) {
        check_keys(gpus, {"count", "memory", "memory_free"}, where + ".gpus");
        if (!gpus.contains("count") || !gpus.at("count").is_number_integer() || gpus.at("count").get<int>() < 0)
          throw Error(where + ".gpus.count: expected a non-negative integer");
        auto one = gpus;
        one.erase("count");
        const int count = gpus.at("count").get<int>();
        for (int g = 0; g < count; ++g) node.gpus.push_back(parse_gpu(one, g, where + ".gpus"));
      } else {
        throw Error(where + ".gpus: expected a list of devices or {\"count\": N, \"memory\": ...}");
      }
    }
    try {
      cluster.add_node(std::move(node));
    } catch (const Error& e) {
      throw Error(source + ": " + e.what());
    }
  }
  return cluster;
}

ClusterResources ClusterResources::load(const std::string& path) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  return from_json(json, path);
}

nlohmann::json ClusterResources::to_json() const {
  auto nodes = nlohmann::json::array();
  for (const auto& node : nodes_) {
    auto gpus = nlohmann::json::array();
    for (const auto& gpu : node.gpus) gpus.push_back({{"memory", gpu.memory_total}, {"memory_free", gpu.memory_free}});
    nodes.push_back({{"name", node.name},
                     {"cpu_threads", node.cpu_threads},
                     {"memory", node.memory_total},
                     {"memory_available", node.memory_available},
                     {"gpus", gpus}});
  }
  return {{"nodes", nodes}};
}

}  // namespace troupe::placement
