/// The plan as a table for people and as JSON for tools.
#include <troupe/placement/placement_plan.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "bytes.hpp"

namespace troupe::placement {
namespace {

/// Left-aligned columns sized to their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string str() const {
    std::vector<size_t> width;
    for (const auto& row : rows_)
      for (size_t c = 0; c < row.size(); ++c) {
        if (width.size() <= c) width.push_back(0);
        width[c] = std::max(width[c], row[c].size());
      }
    std::string out;
    for (const auto& row : rows_) {
      std::string line;
      for (size_t c = 0; c < row.size(); ++c) line += row[c] + std::string(width[c] - row[c].size() + 2, ' ');
      line.erase(line.find_last_not_of(' ') + 1);
      out += "  " + line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

/// "node0/cuda:0-3, node1/cuda:0-3": consecutive device numbers on a node collapse.
std::string devices_of(const ProcessPlan& process) {
  if (!process.placed) return "(not placed)";
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, int>>>> by_node;
  for (const auto& slot : process.ranks) {
    const auto colon = slot.device.find(':');
    const auto kind = slot.device.substr(0, colon);
    const int index = std::stoi(slot.device.substr(colon + 1));
    auto it = std::find_if(by_node.begin(), by_node.end(), [&](const auto& e) { return e.first == slot.node; });
    if (it == by_node.end()) it = by_node.insert(by_node.end(), {slot.node, {}});
    it->second.push_back({kind, index});
  }
  std::string out;
  for (auto& [node, devices] : by_node) {
    std::sort(devices.begin(), devices.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    std::string part = node + "/" + devices.front().first + ":";
    for (size_t i = 0; i < devices.size();) {
      size_t j = i;
      while (j + 1 < devices.size() && devices[j + 1].second == devices[j].second + 1) ++j;
      part += (i ? "," : "") + std::to_string(devices[i].second) + (j > i ? "-" + std::to_string(devices[j].second) : "");
      i = j + 1;
    }
    out += (out.empty() ? "" : ", ") + part;
  }
  return out;
}

std::string billions(int64_t count) {
  char out[32];
  if (count >= 1'000'000'000) std::snprintf(out, sizeof out, "%.2fB", static_cast<double>(count) / 1e9);
  else std::snprintf(out, sizeof out, "%.1fM", static_cast<double>(count) / 1e6);
  return out;
}

std::string bytes_or_dash(int64_t bytes) { return bytes ? format_bytes(bytes) : "-"; }

}  // namespace

std::string format_plan(const Plan& plan) {
  std::ostringstream out;
  std::map<std::string, int> nodes;
  for (const auto& p : plan.processes)
    for (const auto& r : p.ranks) ++nodes[r.node];
  out << "placement plan for " << plan.topology.source << ": " << plan.processes.size() << " process"
      << (plan.processes.size() == 1 ? "" : "es") << " on "
      << (nodes.empty() ? std::string("no node") : std::to_string(nodes.size()) + " node" + (nodes.size() == 1 ? "" : "s"))
      << ", devices are " << (plan.gpus ? "GPUs" : "CPU slots (host memory shared per node)") << ", "
      << precision_name(plan.topology.precision) << ", " << strategy_name(plan.topology.strategy) << "\n\n";

  out << "processes (memory per rank):\n";
  Table processes({"process", "ranks", "devices", "resident", "peak", "peak phase", "free", "host/rank", "fits"});
  for (size_t i = 0; i < plan.processes.size(); ++i) {
    const auto& p = plan.processes[i];
    int64_t free = 0;
    if (!p.ranks.empty())
      free = std::min_element(p.ranks.begin(), p.ranks.end(), [](const auto& a, const auto& b) { return a.capacity < b.capacity; })->capacity;
    const bool fits = p.placed && (!plan.gpus || p.peak <= free);
    processes.add({p.name, std::to_string(plan.topology.find(p.roles.front())->devices), devices_of(p),
                   format_bytes(p.resident), format_bytes(p.peak), p.peak_phase, p.placed ? format_bytes(free) : "-",
                   bytes_or_dash(p.host), fits ? "yes" : "NO"});
  }
  out << processes.str() << "\n";
  for (const auto& p : plan.processes)
    if (p.rollout_copy > 0)
      out << p.name << " holds the actor's rollout copy (--async_rollout): " << format_bytes(p.rollout_copy)
          << " per rank, its weights in the resident state and its generation in every phase\n\n";

  out << "phases (added to the resident state, per rank):\n";
  Table phases({"process", "generate", "score", "train_actor", "train_critic"});
  for (const auto& p : plan.processes) {
    std::vector<std::string> row{p.name, "-", "-", "-", "-"};
    for (const auto& phase : p.phases) {
      const char* names[] = {"generate", "score", "train_actor", "train_critic"};
      for (size_t c = 0; c < 4; ++c)
        if (phase.phase == names[c]) row[c + 1] = format_bytes(phase.bytes);
    }
    phases.add(row);
  }
  out << phases.str() << "\n";

  out << "roles (memory per rank):\n";
  Table roles({"role", "model", "params", "trainable", "dp x tp", "zero", "weights", "optimizer", "grads", "train act",
               "score act", "kv cache", "gen packed", "gen weights", "host", "alone peak"});
  for (const auto& r : plan.roles) {
    const auto& m = r.memory;
    std::string zero = std::to_string(r.spec.zero_stage);
    if (r.spec.offload_optimizer) zero += "+opt-offload";
    if (r.spec.offload_params) zero += "+param-offload";
    std::string trainable = m.trainable ? billions(m.trainable) : "-";
    if (r.spec.lora_dim > 0) trainable += " (lora " + std::to_string(r.spec.lora_dim) + ")";
    roles.add({role_name(r.spec.role), r.model.name, billions(m.parameters), trainable,
               std::to_string(r.spec.dp) + " x " + std::to_string(r.spec.tp) +
                   (r.spec.inference_tp_size > 1 ? " (gen tp " + std::to_string(r.spec.inference_tp_size) + ")" : ""),
               zero, bytes_or_dash(m.weights),
               bytes_or_dash(m.optimizer), bytes_or_dash(m.gradients), bytes_or_dash(m.train_activations),
               bytes_or_dash(m.score_activations), bytes_or_dash(m.kv_cache), bytes_or_dash(m.inference_layout),
               bytes_or_dash(m.inference_weights),
               bytes_or_dash(m.host), format_bytes(m.peak())});
  }
  out << roles.str();
  if (plan.feasible()) {
    out << "\nthe plan fits.\n";
  } else {
    out << "\nthe plan does NOT fit:\n";
    for (const auto& problem : plan.problems) out << "  - " << problem << "\n";
  }
  return out.str();
}

nlohmann::json to_json(const Plan& plan) {
  auto processes = nlohmann::json::array();
  for (const auto& p : plan.processes) {
    auto roles = nlohmann::json::array();
    for (auto r : p.roles) roles.push_back(role_name(r));
    auto ranks = nlohmann::json::array();
    for (const auto& r : p.ranks) ranks.push_back({{"rank", r.rank}, {"node", r.node}, {"device", r.device}, {"free", r.capacity}});
    auto phases = nlohmann::json::object();
    for (const auto& phase : p.phases) phases[phase.phase] = phase.bytes;
    processes.push_back({{"name", p.name},
                         {"roles", roles},
                         {"placed", p.placed},
                         {"strategy", strategy_name(plan.topology.strategy)},
                         {"ranks", ranks},
                         {"resident", p.resident},
                         {"phases", phases},
                         {"peak_phase", p.peak_phase},
                         {"peak", p.peak},
                         {"host", p.host},
                         {"rollout_copy", p.rollout_copy}});
  }
  auto roles = nlohmann::json::array();
  for (const auto& r : plan.roles)
    roles.push_back({{"role", role_name(r.spec.role)},
                     {"model", r.model.name},
                     {"process", plan.processes.at(r.process).name},
                     {"devices", r.spec.devices},
                     {"dp", r.spec.dp},
                     {"tp", r.spec.tp},
                     {"inference_tp_size", r.spec.inference_tp_size},
                     {"zero_stage", r.spec.zero_stage},
                     {"memory", to_json(r.memory)}});
  return {{"topology", plan.topology.source},
          {"devices", plan.gpus ? "gpu" : "cpu"},
          {"feasible", plan.feasible()},
          {"problems", plan.problems},
          {"processes", processes},
          {"roles", roles}};
}

}  // namespace troupe::placement
