#include "supervised_ranks.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include <ATen/Parallel.h>

#include <troupe/actors/local_workers.hpp>
#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>

extern char** environ;

namespace troupe::apps {
namespace {

constexpr const char* kRankVariable = "TROUPE_DP_RANK";
constexpr const char* kStoreVariable = "TROUPE_DP_STORE";

/// This process's arguments as it was started (argv[0] first).
std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t start = 0; start < all.size();) {
    const size_t end = all.find('\0', start);
    args.push_back(all.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return args;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

bool failed(int status) { return !WIFEXITED(status) || WEXITSTATUS(status) != 0; }

}  // namespace

void prefix_log_of_started_rank(int64_t num_processes, const std::optional<LaunchEnvironment>& launch) {
  if (launch) {
    if (launch->world > 1) log::set_prefix("rank " + std::to_string(launch->rank) + "/" + std::to_string(launch->world));
    return;
  }
  if (const char* rank = std::getenv(kRankVariable))
    log::set_prefix("rank " + std::string(rank) + "/" + std::to_string(num_processes));
}

SupervisedRanks::SupervisedRanks(int64_t num_processes, int zero_stage, const std::string& phase,
                                 const std::filesystem::path& output_dir, const torch::Device& device,
                                 std::chrono::seconds timeout, const std::optional<LaunchEnvironment>& launch)
    : phase_(phase), device_(device) {
  if (num_processes < 1) throw Error("--num_processes must be at least 1, got " + std::to_string(num_processes));
  if (zero_stage < 0 || zero_stage > 3) throw Error("--zero_stage must be 0, 1, 2 or 3, got " + std::to_string(zero_stage));
  world_ = static_cast<int>(num_processes);
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  const char* rank_text = std::getenv(kRankVariable);
  const char* store_text = std::getenv(kStoreVariable);
  if (launch) {  // an external launcher started every rank
    prefix_log_of_started_rank(launch->world, launch);
    rank_ = launch->rank;
    world_ = launch->world;
    host = launch->master_addr;
    port = launch->master_port;
    // Rank 0 listens on every interface, as torchrun's store does: MASTER_ADDR is how the
    // other machines reach it, which may not be an address this machine can bind.
    if (rank_ == 0 && world_ > 1 && !launch->launcher_hosts_store) {
      const std::string any = host.find(':') != std::string::npos ? "::" : "0.0.0.0";
      try {
        rendezvous_ = std::make_unique<actors::Rendezvous>(any, port);
      } catch (const Error& e) {
        throw Error("MASTER_PORT=" + std::to_string(port) + ": rank 0 cannot host the rendezvous there (" + e.what() +
                    "); pick a free port");
      }
    }
    if (world_ > 1)
      log::info(phase_, ": started by a launcher as ", describe(*launch), ", ZeRO stage ", zero_stage);
  } else if (rank_text && store_text) {  // a rank the launcher started
    prefix_log_of_started_rank(num_processes);
    rank_ = std::atoi(rank_text);
    const std::string store = store_text;
    const auto colon = store.rfind(':');
    if (rank_ < 1 || rank_ >= world_ || colon == std::string::npos)
      throw Error(std::string(kRankVariable) + "=" + rank_text + " / " + kStoreVariable + "=" + store +
                  ": not a rank of --num_processes " + std::to_string(world_));
    host = store.substr(0, colon);
    port = static_cast<uint16_t>(std::stoi(store.substr(colon + 1)));
  } else if (world_ > 1) {
    rendezvous_ = std::make_unique<actors::Rendezvous>();
    port = rendezvous_->port();
  }
  if (world_ == 1) {
    // As DeepSpeed on one device: the stage holds, over a group of one it partitions nothing.
    if (zero_stage > 0)
      log::warn(phase_, ": --zero_stage ", zero_stage, " with one process partitions nothing ",
                "(add --num_processes N to share the state among N ranks)");
    return;
  }

  // The cores are shared by the ranks of this machine, as torchrun does unless told.
  const int ranks_here = launch ? launch->local_world.value_or(1) : world_;
  if (!std::getenv("OMP_NUM_THREADS"))
    at::set_num_threads(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks_here));
  int cuda_device = -1;
  auto collectives = actors::default_collectives();
  if (device_.is_cuda()) {
    cuda_device = launch ? launch->local_rank.value_or(rank_) : rank_;
    device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(cuda_device));
    collectives = actors::Collectives::kNccl;
  }
  group_ = std::make_shared<actors::DataParallel>(host, port, rank_, world_, phase_,
                                                  std::chrono::duration_cast<std::chrono::milliseconds>(timeout),
                                                  collectives, cuda_device);
  group_->set_zero_stage(zero_stage);
  if (rank_ == 0 && !launch) start_ranks(output_dir);
}

SupervisedRanks::~SupervisedRanks() {
  finishing_ = true;
  if (watcher_.joinable()) watcher_.join();
  stop_ranks();
}

void SupervisedRanks::start_ranks(const std::filesystem::path& output_dir) {
  const auto logs = output_dir / "logs";
  std::filesystem::create_directories(logs);
  const auto program = actors::this_program();
  auto args = own_arguments();
  if (args.empty()) throw Error(phase_ + ": cannot read this process's arguments from /proc/self/cmdline");
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  for (int r = 1; r < world_; ++r) {
    std::vector<std::string> env_storage;
    for (char** e = environ; *e; ++e)
      if (std::strncmp(*e, "TROUPE_DP_", 10) != 0) env_storage.emplace_back(*e);
    env_storage.push_back(std::string(kRankVariable) + "=" + std::to_string(r));
    env_storage.push_back(std::string(kStoreVariable) + "=127.0.0.1:" + std::to_string(rendezvous_->port()));
    std::vector<char*> env;
    for (auto& entry : env_storage) env.push_back(entry.data());
    env.push_back(nullptr);

    Started rank{r, -1, logs / ("rank" + std::to_string(r) + ".log")};
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, rank.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&files, STDOUT_FILENO, STDERR_FILENO);
    const int error = posix_spawn(&rank.pid, program.c_str(), &files, nullptr, argv.data(), env.data());
    posix_spawn_file_actions_destroy(&files);
    if (error != 0) {
      stop_ranks();
      throw Error(phase_ + ": cannot start rank " + std::to_string(r) + " (" + program.string() + "): " + std::strerror(error));
    }
    started_.push_back(rank);
  }
  log::info(phase_, ": ", world_, " data-parallel ranks, ZeRO stage ", group_->zero_stage(), "; ranks 1-", world_ - 1,
            " log to ", logs.string());
  watcher_ = std::thread([this] { watch_ranks(); });
}

void SupervisedRanks::watch_ranks() {
  while (!finishing_) {
    for (auto& rank : started_) {
      if (rank.exited) continue;
      int status = 0;
      if (waitpid(rank.pid, &status, WNOHANG) != rank.pid) continue;
      rank.exited = true;
      if (!failed(status)) continue;
      // This rank would wait at its next collective for a rank that is gone: stop now.
      log::error(phase_, ": rank ", rank.rank, " ended with ", describe_status(status), "; stopping the run (its log: ",
                 rank.log.string(), ")");
      stop_ranks();
      std::_Exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void SupervisedRanks::stop_ranks() {
  for (auto& rank : started_)
    if (!rank.exited) kill(rank.pid, SIGTERM);
  for (auto& rank : started_) {
    if (rank.exited) continue;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    bool reaped = false;
    while (!(reaped = waitpid(rank.pid, nullptr, WNOHANG) == rank.pid) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!reaped) {
      kill(rank.pid, SIGKILL);
      waitpid(rank.pid, nullptr, 0);
    }
    rank.exited = true;
  }
}

void SupervisedRanks::wait_for_ranks() {
  if (rank_ != 0 || started_.empty()) return;
  finishing_ = true;
  if (watcher_.joinable()) watcher_.join();
  std::string failures;
  for (auto& rank : started_) {
    if (rank.exited) continue;
    int status = 0;
    waitpid(rank.pid, &status, 0);
    rank.exited = true;
    if (failed(status))
      failures += (failures.empty() ? "" : "; ") + std::string("rank ") + std::to_string(rank.rank) + " ended with " +
                  describe_status(status) + " (its log: " + rank.log.string() + ")";
  }
  if (!failures.empty()) throw Error(phase_ + ": " + failures);
}

}  // namespace troupe::apps
