#include <troupe/engine/progress.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unistd.h>

#include <troupe/common/error.hpp>

namespace troupe::engine {
namespace {

constexpr size_t kRateWindow = 20;   // updates averaged for tokens/s: recent, yet not jumpy
constexpr int kBarWidth = 20;
constexpr double kRedrawSeconds = 0.1;  // a terminal needs no more than ~10 redraws a second

bool is_terminal(const std::ostream& out) {
  if (&out == &std::cerr || &out == &std::clog) return ::isatty(STDERR_FILENO) == 1;
  if (&out == &std::cout) return ::isatty(STDOUT_FILENO) == 1;
  return false;
}

double seconds_between(ProgressReporter::Clock::time_point from, ProgressReporter::Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

std::string clock_text(double seconds) {
  const auto total = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  char text[32];
  std::snprintf(text, sizeof text, "%02lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  return text;
}

}  // namespace

ProgressReporter::ProgressReporter(std::string label, int64_t total_steps, std::ostream& out)
    : ProgressReporter(std::move(label), total_steps, out, is_terminal(out)) {}

ProgressReporter::ProgressReporter(std::string label, int64_t total_steps, std::ostream& out, bool interactive)
    : label_(std::move(label)), total_steps_(total_steps), out_(out), interactive_(interactive) {
  if (total_steps < 0) throw Error("progress '" + label_ + "': total_steps must be >= 0, got " + std::to_string(total_steps));
  start_time_ = Clock::now();
  window_.push_back({start_time_, 0});
}

ProgressReporter::~ProgressReporter() { finish(); }

void ProgressReporter::set_interval_seconds(double seconds) {
  if (!(seconds >= 0)) throw Error("progress '" + label_ + "': interval_seconds must be >= 0");
  interval_seconds_ = seconds;
}

void ProgressReporter::update(int64_t step, double loss, int64_t tokens_this_step) {
  const auto now = Clock::now();
  if (first_step_ < 0) first_step_ = step - 1;
  window_.push_back({now, tokens_this_step});
  while (window_.size() > kRateWindow + 1) window_.pop_front();

  const bool last = total_steps_ > 0 && step >= total_steps_;
  const double since_print = printed_ ? seconds_between(last_print_, now) : INFINITY;
  if (interactive_) {
    if (!last && since_print < kRedrawSeconds) return;
    std::string line = label_ + " " + (total_steps_ > 0 ? bar(step) + " " : "") + describe(step, loss, now);
    const size_t length = line.size();
    // Spaces clear what a longer previous line left behind.
    if (length < last_line_length_) line.append(last_line_length_ - length, ' ');
    out_ << '\r' << line << std::flush;
    last_line_length_ = length;
    bar_open_ = true;
  } else {
    if (!last && since_print < interval_seconds_) return;
    out_ << label_ << " " << describe(step, loss, now) << '\n' << std::flush;
  }
  printed_ = true;
  last_print_ = now;
}

void ProgressReporter::finish() {
  if (!bar_open_) return;
  out_ << '\n' << std::flush;
  bar_open_ = false;
  last_line_length_ = 0;
}

std::string ProgressReporter::describe(int64_t step, double loss, Clock::time_point now) const {
  int64_t tokens = 0;
  for (size_t i = 1; i < window_.size(); ++i) tokens += window_[i].tokens;
  const double window_seconds = seconds_between(window_.front().time, window_.back().time);
  const double tokens_per_second = window_seconds > 0 ? static_cast<double>(tokens) / window_seconds : 0.0;

  char text[160];
  std::string where = std::to_string(step) + (total_steps_ > 0 ? "/" + std::to_string(total_steps_) : "");
  std::snprintf(text, sizeof text, "%s %s %.3f %.0f tok/s", where.c_str(), value_name_.c_str(), loss, tokens_per_second);
  std::string line = text;
  if (total_steps_ > 0) {
    const int64_t done = std::max<int64_t>(step - first_step_, 1);
    const double mean_step_seconds = seconds_between(start_time_, now) / static_cast<double>(done);
    line += " ETA " + clock_text(mean_step_seconds * static_cast<double>(std::max<int64_t>(total_steps_ - step, 0)));
  }
  return line;
}

std::string ProgressReporter::bar(int64_t step) const {
  const double fraction = std::clamp(static_cast<double>(step) / static_cast<double>(total_steps_), 0.0, 1.0);
  const int filled = static_cast<int>(fraction * kBarWidth);
  return "[" + std::string(filled, '#') + std::string(kBarWidth - filled, '.') + "]";
}

}  // namespace troupe::engine
