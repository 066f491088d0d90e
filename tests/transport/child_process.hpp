#pragma once
/// A child process for the multi-process tests: spawned with argv, killed if still
/// running when it goes out of scope.
#include <csignal>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <vector>

#include <troupe/common/error.hpp>

extern char** environ;

namespace troupe::test {

class ChildProcess {
 public:
  explicit ChildProcess(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
      throw Error("test: cannot start " + args[0]);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0) {
      kill();
    }
  }
  /// Waits for the exit and returns the exit code (-signal if killed).
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }
  void kill() {
    ::kill(pid_, SIGKILL);
    wait();
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace troupe::test
