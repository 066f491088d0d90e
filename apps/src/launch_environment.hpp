#pragma once
/// Steps 1, 2 and DPO started by an external launcher (torchrun, the deepspeed launcher,
/// SLURM scripts that export the same variables): each process is one data-parallel rank,
/// told its place by torchrun's environment variables.
#include <cstdint>
#include <optional>
#include <string>

namespace troupe::apps {

struct LaunchEnvironment {
  int rank = 0;                ///< RANK
  int world = 1;               ///< WORLD_SIZE
  std::string master_addr;     ///< MASTER_ADDR: rank 0's machine, where the rendezvous listens
  uint16_t master_port = 0;    ///< MASTER_PORT
  std::optional<int> local_rank;        ///< LOCAL_RANK: this process's place on its machine
  std::optional<int> local_world;       ///< LOCAL_WORLD_SIZE: ranks on this machine
  /// TORCHELASTIC_USE_AGENT_STORE=True: torchrun's agent already hosts a TCPStore at
  /// MASTER_ADDR:MASTER_PORT, so rank 0 joins it as the others do instead of hosting one.
  bool launcher_hosts_store = false;
};

/// The launcher's variables when any of RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT is set
/// (then all four must be), else nothing. Throws troupe::Error naming the variable that
/// is missing, not a number, out of range (RANK >= WORLD_SIZE, LOCAL_RANK >=
/// LOCAL_WORLD_SIZE, a port outside 1-65535) or, with `num_processes` > 1, different
/// from --num_processes.
std::optional<LaunchEnvironment> launch_environment(int64_t num_processes);

/// One line for the log: "RANK=1 WORLD_SIZE=2 ... (rendezvous at MASTER_ADDR:MASTER_PORT)".
std::string describe(const LaunchEnvironment& launch);

}  // namespace troupe::apps
