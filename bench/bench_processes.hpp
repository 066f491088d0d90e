#pragma once
/// Child processes for the multi-process benchmarks: start one, wait for it.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include <troupe/common/error.hpp>

extern char** environ;

namespace troupe::bench {

/// Starts `args` (argv[0] looked up in PATH); with `quiet` its output goes to /dev/null.
inline pid_t spawn(std::vector<std::string> args, bool quiet = false) {
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  auto rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw Error("bench: cannot start " + args[0]);
  return pid;
}

/// The exit status of `pid`, -1 when it did not exit normally.
inline int wait_pid(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace troupe::bench
