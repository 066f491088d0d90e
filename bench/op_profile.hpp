#pragma once
/// Per-operator wall time of whatever runs while an OpProfile is alive, grouped by ATen
/// operator name and input shapes: the table that says where a step's time goes, printed
/// in the same form as bench/op_profile.py prints for the PyTorch peers (torch.profiler,
/// self time), so the two sides can be compared line by line.
///
/// Self time: an operator's wall time less that of the operators it called (a per-thread
/// stack of RecordFunction scopes). Autograd's backward nodes appear as their own rows.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/record_function.h>

namespace troupe::bench {

class OpProfile {
 public:
  OpProfile() {
    instance() = this;
    handle_ = at::addGlobalCallback(
        at::RecordFunctionCallback(&OpProfile::on_enter, &OpProfile::on_exit).needsInputs(true));
  }
  ~OpProfile() { at::removeCallback(handle_); instance() = nullptr; }
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;

  /// Prints the `rows` largest (operator, shapes) entries by self time, then the total.
  void print(int rows, double steps) const {
    std::vector<std::pair<std::string, Entry>> sorted(entries_.begin(), entries_.end());
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.self > b.second.self; });
    double total = 0;
    for (const auto& [key, e] : sorted) total += e.self;
    std::printf("%10s %7s %8s  %s\n", "self ms", "share", "calls", "operator [input shapes] (per step)");
    for (int i = 0; i < rows && i < static_cast<int>(sorted.size()); ++i) {
      const auto& [key, e] = sorted[static_cast<size_t>(i)];
      std::printf("%10.1f %6.1f%% %8.0f  %s\n", 1e3 * e.self / steps, 100.0 * e.self / total, e.calls / steps, key.c_str());
    }
    std::printf("%10.1f %6.1f%% %8s  total self time of recorded operators\n", 1e3 * total / steps, 100.0, "");
  }

 private:
  struct Entry {
    double self = 0, calls = 0;
  };
  struct Frame {
    std::string key;
    std::chrono::steady_clock::time_point start;
    double children = 0;
  };

  static OpProfile*& instance() {
    static OpProfile* p = nullptr;
    return p;
  }
  static std::vector<Frame>& stack() {
    thread_local std::vector<Frame> s;
    return s;
  }

  static std::string key_of(const at::RecordFunction& fn) {
    std::ostringstream key;
    key << fn.name() << " [";
    bool first = true;
    for (const auto& input : fn.inputs()) {
      if (!input.isTensor()) continue;
      key << (first ? "" : ", ") << input.toTensor().sizes();
      first = false;
    }
    key << "]";
    return key.str();
  }

  static std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
    stack().push_back({key_of(fn), std::chrono::steady_clock::now(), 0.0});
    return nullptr;
  }

  static void on_exit(const at::RecordFunction&, at::ObserverContext*) {
    auto& s = stack();
    if (s.empty()) return;
    Frame f = std::move(s.back());
    s.pop_back();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - f.start).count();
    if (!s.empty()) s.back().children += wall;
    if (auto* p = instance()) {
      std::lock_guard<std::mutex> lock(p->mutex_);
      auto& e = p->entries_[f.key];
      e.self += wall - f.children;
      e.calls += 1;
    }
  }

  at::CallbackHandle handle_ = 0;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

}  // namespace troupe::bench
