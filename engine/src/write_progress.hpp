#pragma once
/// Progress of a long write (a checkpoint of a large model): while it lives, a thread
/// measures how much the target directory holds and says so, rewriting one line on a
/// terminal every second and printing a plain line every `interval_seconds` otherwise.
/// Writes that end before the first report print nothing.
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

namespace troupe::engine {

class WriteProgress {
 public:
  /// Reports on `directory` (what is being written, e.g. a checkpoint's temporary
  /// directory) as `label` ("saving out/actor").
  WriteProgress(std::string label, std::filesystem::path directory, std::ostream& out = std::cerr,
                double interval_seconds = 10.0);
  /// Stops the reports; after any report, a last line with the total and the time.
  ~WriteProgress();
  WriteProgress(const WriteProgress&) = delete;
  WriteProgress& operator=(const WriteProgress&) = delete;

 private:
  void run();
  void report(bool last);

  std::string label_;
  std::filesystem::path directory_;
  std::ostream& out_;
  bool interactive_;
  double interval_seconds_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  bool reported_ = false;
  bool stop_ = false;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace troupe::engine
