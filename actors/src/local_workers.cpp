/// Worker processes on this machine: spawn, match to nodes, stop.
#include <troupe/actors/local_workers.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>

extern char** environ;

namespace troupe::actors {
namespace {

/// How long a worker gets to exit on its own (it does once the controller is gone),
/// then after SIGTERM, before it is killed.
constexpr auto exit_grace = std::chrono::seconds(3);
constexpr auto term_grace = std::chrono::seconds(2);

bool reaped(pid_t pid, std::chrono::steady_clock::time_point deadline) {
  while (true) {
    if (waitpid(pid, nullptr, WNOHANG) != 0) return true;  // exited (or not our child any more)
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

std::filesystem::path this_program() { return std::filesystem::read_symlink("/proc/self/exe"); }

LocalWorkers::LocalWorkers(const std::filesystem::path& program, uint16_t port, const std::string& secret,
                           size_t count) {
  const std::string join = "127.0.0.1:" + std::to_string(port);
  std::vector<std::string> args = {program.string(), "worker", "--join", join};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // The secret, and this process's log level (however it was set) for the workers to log at.
  const std::string level_variable = std::string(log::kLevelVariable) + "=";
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "TROUPE_SECRET=", 14) != 0 && std::strncmp(*e, level_variable.c_str(), level_variable.size()) != 0)
      env_storage.emplace_back(*e);
  env_storage.push_back("TROUPE_SECRET=" + secret);
  env_storage.push_back(level_variable + std::string(log::level_name(log::level())));
  std::vector<char*> env;
  for (auto& entry : env_storage) env.push_back(entry.data());
  env.push_back(nullptr);
  for (size_t i = 0; i < count; ++i) {
    pid_t pid = -1;
    const int failed = posix_spawn(&pid, program.c_str(), nullptr, nullptr, argv.data(), env.data());
    if (failed != 0) {
      stop();
      throw Error("cannot start worker process " + program.string() + ": " + std::strerror(failed));
    }
    pids_.push_back(pid);
  }
}

LocalWorkers::~LocalWorkers() { stop(); }

void LocalWorkers::stop() {
  std::vector<pid_t> running;
  auto deadline = std::chrono::steady_clock::now() + exit_grace;
  for (pid_t pid : pids_)
    if (!reaped(pid, deadline)) running.push_back(pid);
  deadline = std::chrono::steady_clock::now() + term_grace;
  for (pid_t pid : running) kill(pid, SIGTERM);
  for (pid_t pid : running)
    if (!reaped(pid, deadline)) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  pids_.clear();
}

std::string node_of_process(const std::vector<std::string>& nodes, pid_t pid) {
  const auto suffix = ":" + std::to_string(pid);
  for (const auto& node : nodes)
    if (node.size() > suffix.size() && node.compare(node.size() - suffix.size(), suffix.size(), suffix) == 0) return node;
  return {};
}

}  // namespace troupe::actors
