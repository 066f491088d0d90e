/// This machine's CPU threads and host memory, from the kernel's own accounting.
#include <troupe/placement/resources.hpp>

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

#include <troupe/common/error.hpp>

namespace troupe::placement {
namespace {

std::optional<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<int64_t> parse_plain_integer(const std::string& text) {
  try {
    size_t pos = 0;
    const auto value = std::stoll(text, &pos);
    return value;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

int affinity_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
}

/// Directories that may hold this process's memory cgroup files: its own cgroup (from
/// /proc/self/cgroup; v2 "0::/path", v1 "N:memory:/path") first, then the mount root,
/// which is what a container sees as its own cgroup.
std::vector<std::pair<std::string, std::string>> cgroup_candidates() {
  std::string v2_path, v1_path;
  if (auto text = read_small_file("/proc/self/cgroup")) {
    std::istringstream lines(*text);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("0::", 0) == 0) v2_path = line.substr(3);
      const auto memory = line.find(":memory:");
      if (memory != std::string::npos) v1_path = line.substr(memory + 8);
    }
  }
  std::vector<std::pair<std::string, std::string>> out;  // (limit file, usage file)
  for (const auto& dir : {"/sys/fs/cgroup" + v2_path, std::string("/sys/fs/cgroup")})
    out.emplace_back(dir + "/memory.max", dir + "/memory.current");
  for (const auto& dir : {"/sys/fs/cgroup/memory" + v1_path, std::string("/sys/fs/cgroup/memory")})
    out.emplace_back(dir + "/memory.limit_in_bytes", dir + "/memory.usage_in_bytes");
  return out;
}

/// The cgroup's limit and usage: a container's real memory budget.
std::optional<std::pair<int64_t, int64_t>> cgroup_memory() {
  for (const auto& [limit_file, usage_file] : cgroup_candidates()) {
    const auto text = read_small_file(limit_file);
    if (!text) continue;
    const auto limit = parse_cgroup_limit(*text);
    if (!limit) continue;
    int64_t usage = 0;
    if (auto usage_text = read_small_file(usage_file))
      if (auto value = parse_plain_integer(*usage_text)) usage = *value;
    // Usage counts reclaimable page cache; subtract inactive file pages as `docker stats` does.
    const auto stat_file = limit_file.substr(0, limit_file.rfind('/')) + "/memory.stat";
    if (auto stat = read_small_file(stat_file)) {
      std::istringstream lines(*stat);
      std::string key;
      int64_t value = 0;
      while (lines >> key >> value)
        if (key == "total_inactive_file" || key == "inactive_file") {
          usage = std::max<int64_t>(0, usage - value);
          break;
        }
    }
    return std::make_pair(*limit, usage);
  }
  return std::nullopt;
}

}  // namespace

MemInfo parse_meminfo(const std::string& text, const std::string& source) {
  MemInfo info;
  bool have_total = false, have_available = false;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string key, unit;
    int64_t value = 0;
    if (!(fields >> key >> value)) continue;
    fields >> unit;
    const int64_t scale = unit == "kB" ? 1024 : 1;
    if (key == "MemTotal:") info.total = value * scale, have_total = true;
    if (key == "MemAvailable:") info.available = value * scale, have_available = true;
  }
  if (!have_total) throw Error(source + ": no MemTotal line");
  // Kernels before 3.14 lack MemAvailable; MemFree is the closest lower bound.
  if (!have_available) {
    std::istringstream again(text);
    while (std::getline(again, line)) {
      std::istringstream fields(line);
      std::string key;
      int64_t value = 0;
      if (fields >> key >> value && key == "MemFree:") info.available = value * 1024, have_available = true;
    }
  }
  if (!have_available) throw Error(source + ": neither MemAvailable nor MemFree");
  return info;
}

std::optional<int64_t> parse_cgroup_limit(const std::string& text) {
  auto trimmed = text.substr(0, text.find_first_of(" \n"));
  if (trimmed == "max" || trimmed.empty()) return std::nullopt;
  auto value = parse_plain_integer(trimmed);
  // cgroup v1 reports "no limit" as a huge page-aligned number near 2^63.
  if (!value || *value <= 0 || *value >= (int64_t{1} << 62)) return std::nullopt;
  return value;
}

NodeResources detect_local_node(const std::string& name) {
  NodeResources node;
  node.name = name;
  node.cpu_threads = affinity_threads();
  const auto meminfo_text = read_small_file("/proc/meminfo");
  if (!meminfo_text) throw Error("/proc/meminfo: cannot read host memory");
  const auto info = parse_meminfo(*meminfo_text, "/proc/meminfo");
  node.memory_total = info.total;
  node.memory_available = info.available;
  if (auto cgroup = cgroup_memory()) {
    const auto [limit, usage] = *cgroup;
    node.memory_total = std::min(node.memory_total, limit);
    node.memory_available = std::min(node.memory_available, std::max<int64_t>(0, limit - usage));
  }
  node.gpus = detect_cuda_devices();
  return node;
}

}  // namespace troupe::placement
