#include "launch_environment.hpp"

#include <cerrno>
#include <cstdlib>
#include <limits>

#include <troupe/common/error.hpp>

namespace troupe::apps {
namespace {

const char* const kLauncherVariables[] = {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"};

std::optional<std::string> variable(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

/// The whole of `text` as a base-10 integer in [low, high], else troupe::Error naming `name`.
int64_t integer_variable(const char* name, const std::string& text, int64_t low, int64_t high, const std::string& range) {
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE)
    throw Error(std::string(name) + "=\"" + text + "\": not a whole number (set by the launcher: torchrun, deepspeed or "
                "your job script)");
  if (value < low || value > high) throw Error(std::string(name) + "=" + text + ": must be " + range);
  return value;
}

}  // namespace

std::optional<LaunchEnvironment> launch_environment(int64_t num_processes) {
  bool any = false;
  for (const char* name : kLauncherVariables) any = any || variable(name).has_value();
  if (!any) return std::nullopt;
  for (const char* name : kLauncherVariables)
    if (!variable(name))
      throw Error(std::string(name) + " is not set: a process started by a launcher needs all of RANK, WORLD_SIZE, "
                  "MASTER_ADDR and MASTER_PORT (as torchrun sets them); unset them all to run without one");
  constexpr int64_t kMostRanks = 1 << 20;
  LaunchEnvironment launch;
  launch.world = static_cast<int>(integer_variable("WORLD_SIZE", *variable("WORLD_SIZE"), 1, kMostRanks, "at least 1"));
  launch.rank = static_cast<int>(integer_variable("RANK", *variable("RANK"), 0, launch.world - 1,
                                                  "in [0, WORLD_SIZE - 1] (WORLD_SIZE=" + std::to_string(launch.world) + ")"));
  launch.master_addr = *variable("MASTER_ADDR");
  if (launch.master_addr.empty()) throw Error("MASTER_ADDR is empty: give rank 0's host name or address");
  launch.master_port = static_cast<uint16_t>(integer_variable("MASTER_PORT", *variable("MASTER_PORT"), 1, 65535, "in [1, 65535]"));
  if (auto text = variable("LOCAL_WORLD_SIZE"))
    launch.local_world = static_cast<int>(integer_variable("LOCAL_WORLD_SIZE", *text, 1, launch.world,
                                                           "in [1, WORLD_SIZE] (WORLD_SIZE=" + std::to_string(launch.world) + ")"));
  if (auto text = variable("LOCAL_RANK")) {
    const int64_t most = launch.local_world ? *launch.local_world - 1 : launch.world - 1;
    launch.local_rank = static_cast<int>(integer_variable(
        "LOCAL_RANK", *text, 0, most,
        launch.local_world ? "in [0, LOCAL_WORLD_SIZE - 1] (LOCAL_WORLD_SIZE=" + std::to_string(*launch.local_world) + ")"
                           : "in [0, WORLD_SIZE - 1] (WORLD_SIZE=" + std::to_string(launch.world) + ")"));
  }
  if (auto agent = variable("TORCHELASTIC_USE_AGENT_STORE"))
    launch.launcher_hosts_store = *agent == "True" || *agent == "true" || *agent == "1";
  if (num_processes > 1 && num_processes != launch.world)
    throw Error("--num_processes " + std::to_string(num_processes) + " with WORLD_SIZE=" + std::to_string(launch.world) +
                ": a launcher started this process as one of WORLD_SIZE ranks, so troupe starts none; leave "
                "--num_processes out (or give WORLD_SIZE)");
  return launch;
}

std::string describe(const LaunchEnvironment& launch) {
  std::string text = "RANK=" + std::to_string(launch.rank) + " WORLD_SIZE=" + std::to_string(launch.world);
  if (launch.local_rank) text += " LOCAL_RANK=" + std::to_string(*launch.local_rank);
  if (launch.local_world) text += " LOCAL_WORLD_SIZE=" + std::to_string(*launch.local_world);
  return text + " (rendezvous at " + launch.master_addr + ":" + std::to_string(launch.master_port) +
         (launch.launcher_hosts_store ? ", hosted by torchrun" : "") + ")";
}

}  // namespace troupe::apps
