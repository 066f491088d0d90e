#pragma once
/// Small measuring helpers the benchmark programs share: wall time, medians and the
/// process's peak memory.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe::bench {

/// The next command-line argument as the current flag's value; throws when there is none.
using FlagValue = std::function<std::string()>;

/// Calls `on_flag(flag, value)` for each argument after the program name; `value()`
/// takes the argument after the flag (an error names the flag when it is missing).
template <class OnFlag>
void for_each_flag(int argc, char** argv, OnFlag on_flag) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const FlagValue value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
      return argv[++i];
    };
    on_flag(flag, value);
  }
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

/// The process's peak resident set (VmHWM) in bytes; 0 when /proc is not there.
inline int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // reported in kB
  return 0;
}

}  // namespace troupe::bench
