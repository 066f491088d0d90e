#include "write_progress.hpp"

#include <cstdio>
#include <unistd.h>

#include <troupe/engine/hybrid_memory.hpp>

namespace troupe::engine {
namespace {

/// Bytes in the regular files under `directory`; files that vanish meanwhile count 0.
int64_t bytes_under(const std::filesystem::path& directory) {
  std::error_code error;
  int64_t total = 0;
  for (std::filesystem::recursive_directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
    std::error_code size_error;
    if (it->is_regular_file(size_error)) {
      const auto size = it->file_size(size_error);
      if (!size_error) total += static_cast<int64_t>(size);
    }
  }
  return total;
}

}  // namespace

WriteProgress::WriteProgress(std::string label, std::filesystem::path directory, std::ostream& out,
                             double interval_seconds)
    : label_(std::move(label)),
      directory_(std::move(directory)),
      out_(out),
      interactive_((&out == &std::cerr || &out == &std::clog) && ::isatty(STDERR_FILENO) == 1),
      interval_seconds_(interactive_ ? 1.0 : interval_seconds),
      thread_([this] { run(); }) {}

WriteProgress::~WriteProgress() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  if (reported_) report(/*last=*/true);
}

void WriteProgress::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto interval = std::chrono::duration<double>(interval_seconds_);
  while (!wake_.wait_for(lock, interval, [this] { return stop_; })) {
    report(/*last=*/false);
    reported_ = true;
  }
}

void WriteProgress::report(bool last) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  char line[256];
  std::snprintf(line, sizeof line, "%s: %s %s in %.0f s", label_.c_str(), format_bytes(bytes_under(directory_)).c_str(),
                last ? "written" : "so far", seconds);
  if (interactive_) {
    out_ << '\r' << line << (last ? "\n" : "") << std::flush;
  } else {
    out_ << line << '\n' << std::flush;
  }
}

}  // namespace troupe::engine
