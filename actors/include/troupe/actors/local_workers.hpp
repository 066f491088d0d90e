#pragma once
/// `troupe worker` processes a controller starts on its own machine, one per process of
/// a topology that does not hold the actor. Each joins the controller's cluster with the
/// shared secret, passed in the environment (not on the command line, where `ps` shows
/// it). They exit by themselves when the controller goes away; the destructor stops any
/// that did not.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace troupe::actors {

/// This process's executable (/proc/self/exe): the `troupe` binary when run from the CLI.
std::filesystem::path this_program();

class LocalWorkers {
 public:
  /// Starts `count` workers of `program` joining 127.0.0.1:`port`, logging at this
  /// process's log level (TROUPE_LOG_LEVEL in their environment). Throws troupe::Error
  /// naming the program when one cannot be started.
  LocalWorkers(const std::filesystem::path& program, uint16_t port, const std::string& secret, size_t count);
  ~LocalWorkers();
  LocalWorkers(const LocalWorkers&) = delete;
  LocalWorkers& operator=(const LocalWorkers&) = delete;

  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  /// SIGTERM, a grace period, then SIGKILL for any still running.
  void stop();
  std::vector<pid_t> pids_;
};

/// The node among `nodes` ("host:pid") that is process `pid`; empty when none is.
std::string node_of_process(const std::vector<std::string>& nodes, pid_t pid);

}  // namespace troupe::actors
