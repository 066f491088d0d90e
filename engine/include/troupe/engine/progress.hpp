#pragma once
/// What a training loop shows while it runs: a live bar on a terminal, and plain
/// lines at a steady pace when output goes to a log file.
#include <chrono>
#include <cstdint>
#include <deque>
#include <iostream>
#include <string>

namespace troupe::engine {

/// Reports step, loss, tokens/s and ETA. On a terminal one line is rewritten with
/// `\r` (`step1 [#####.....] 120/400 loss 2.314 1830 tok/s ETA 00:02:31`); elsewhere
/// a plain line is printed at most every interval_seconds and always on the last
/// step, so logs stay short and `\r` never ends up in them.
class ProgressReporter {
 public:
  using Clock = std::chrono::steady_clock;

  /// Interactive when `out` is std::cerr/std::clog or std::cout and that stream is a
  /// terminal. `total_steps` 0 means unknown (no bar, no ETA).
  ProgressReporter(std::string label, int64_t total_steps, std::ostream& out = std::cerr);
  /// As above with interactivity decided by the caller (tests, `--no_progress_bar`).
  ProgressReporter(std::string label, int64_t total_steps, std::ostream& out, bool interactive);
  /// Ends an open bar with its newline.
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  /// What the reported value is called in the line (default "loss"; an evaluation
  /// reports e.g. "reward").
  void set_value_name(std::string name) { value_name_ = std::move(name); }
  /// Seconds between plain lines (default 10; 0 prints every step). Ignored on a terminal.
  void set_interval_seconds(double seconds);

  /// Records that steps up to `step` (counted from 1; `total_steps` is the last) are
  /// done, the last with `loss` over `tokens_this_step` tokens, and prints if due.
  void update(int64_t step, double loss, int64_t tokens_this_step);

  /// Ends the bar with a newline; later output starts on a fresh line. Idempotent.
  void finish();

  bool interactive() const { return interactive_; }

 private:
  /// `step/total loss L N tok/s ETA hh:mm:ss`, the fields both modes share.
  std::string describe(int64_t step, double loss, Clock::time_point now) const;
  std::string bar(int64_t step) const;
  std::string value_name_ = "loss";

  struct Sample {
    Clock::time_point time;
    int64_t tokens;
  };

  std::string label_;
  int64_t total_steps_;
  std::ostream& out_;
  bool interactive_;
  double interval_seconds_ = 10.0;

  Clock::time_point start_time_;
  int64_t first_step_ = -1;  ///< step before the first update, so resumed runs time only their own steps
  std::deque<Sample> window_;  ///< recent updates for tokens/s; front is the window's start
  Clock::time_point last_print_;
  bool printed_ = false;
  bool bar_open_ = false;
  size_t last_line_length_ = 0;
};

}  // namespace troupe::engine
