#pragma once
/// Steps 1 and 2 on several data-parallel ranks of this machine (`--num_processes N`),
/// as `deepspeed --num_gpus N main.py` runs DeepSpeed-Chat's steps 1-2.
///
/// The process the user started is rank 0, the launcher: it hosts the rendezvous (a
/// c10d TCPStore) and starts ranks 1 .. N-1 as copies of itself with the same flags,
/// each told its rank and the rendezvous through the environment (TROUPE_DP_RANK,
/// TROUPE_DP_STORE). A started rank writes its log to <output_dir>/logs/rank<r>.log.
/// When a started rank dies, the launcher stops the run at once, naming the rank, its
/// exit status and its log, rather than waiting at the next collective.
///
/// Started by an external launcher instead (torchrun's RANK, WORLD_SIZE, MASTER_ADDR,
/// MASTER_PORT; launch_environment.hpp), this process is one rank and starts none: rank 0
/// hosts the rendezvous at MASTER_ADDR:MASTER_PORT, the others connect to it, and the
/// launcher owns the processes' lifetimes.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

#include <torch/types.h>

#include <troupe/actors/data_parallel.hpp>

#include "launch_environment.hpp"

namespace troupe::apps {

/// In a rank the launcher started (TROUPE_DP_RANK set), "[rank r/N] " leads every log
/// line from here on; the launcher's own lines stay as they are. Under an external
/// launcher every rank's lines carry it (their outputs often meet in one stream).
/// SupervisedRanks does it too; a step calls it first so that its lines before the ranks
/// meet carry it as well.
void prefix_log_of_started_rank(int64_t num_processes, const std::optional<LaunchEnvironment>& launch = std::nullopt);

class SupervisedRanks {
 public:
  /// This process's place among `num_processes` ranks of `phase` ("step1"); starts the
  /// others when it is the launcher. With `launch` (an external launcher's variables) it
  /// is rank RANK of WORLD_SIZE and starts nothing. Rank r trains on `device`, or on
  /// cuda:r (cuda:LOCAL_RANK under a launcher) with a CUDA device. Throws troupe::Error
  /// when num_processes < 1, a rank cannot start or the rendezvous cannot listen.
  SupervisedRanks(int64_t num_processes, int zero_stage, const std::string& phase,
                  const std::filesystem::path& output_dir, const torch::Device& device,
                  std::chrono::seconds timeout, const std::optional<LaunchEnvironment>& launch = std::nullopt);
  /// The launcher: waits for the started ranks to exit (they end with the last
  /// collective) and stops any still running.
  ~SupervisedRanks();
  SupervisedRanks(const SupervisedRanks&) = delete;
  SupervisedRanks& operator=(const SupervisedRanks&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }
  bool is_launcher() const { return rank_ == 0; }
  /// This rank's device.
  const torch::Device& device() const { return device_; }
  /// The data-parallel group at the ZeRO stage asked for; null with one process.
  const std::shared_ptr<actors::DataParallel>& group() const { return group_; }
  /// The launcher: waits for every started rank to exit and throws troupe::Error naming
  /// the first that failed. Others: nothing.
  void wait_for_ranks();

 private:
  void start_ranks(const std::filesystem::path& output_dir);
  void watch_ranks();
  void stop_ranks();

  int rank_ = 0;
  int world_ = 1;
  std::string phase_;
  torch::Device device_;
  std::unique_ptr<actors::Rendezvous> rendezvous_;  ///< the launcher's
  std::shared_ptr<actors::DataParallel> group_;
  struct Started {
    int rank;
    pid_t pid;
    std::filesystem::path log;
    bool exited = false;
  };
  std::vector<Started> started_;
  std::atomic<bool> finishing_{false};
  std::thread watcher_;
};

}  // namespace troupe::apps
