#pragma once
/// Fake RoleModels for orchestration tests: cheap deterministic tensors, a shared event
/// log with timestamps order, a measure of how many calls overlapped, and failures on
/// request.
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include <troupe/actors/role_model.hpp>
#include <troupe/common/error.hpp>

namespace troupe::actors::testing {

/// What the fakes did, in order, and the most calls that ran at once.
class EventLog {
 public:
  void begin(const std::string& what) {
    std::lock_guard lock(mutex_);
    events_.push_back(what + " begin");
    max_active_ = std::max(max_active_, ++active_);
  }
  void end(const std::string& what) {
    std::lock_guard lock(mutex_);
    events_.push_back(what + " end");
    --active_;
  }
  std::vector<std::string> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  int max_active() const {
    std::lock_guard lock(mutex_);
    return max_active_;
  }
  /// Position of `event` in the log; -1 if absent.
  int index_of(const std::string& event) const {
    auto all = events();
    for (size_t i = 0; i < all.size(); ++i)
      if (all[i] == event) return static_cast<int>(i);
    return -1;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> events_;
  int active_ = 0;
  int max_active_ = 0;
};

/// generate: sequences = [prompt, prompt + 1]; score: a role-named tensor derived from the
/// sequences; train: metrics {rows, rank-independent sums}. Sleeps `delay` per call so
/// overlap is observable.
class FakeRole : public RoleModel, public Generator, public Trainable {
 public:
  FakeRole(std::string role, std::shared_ptr<EventLog> log, std::chrono::milliseconds delay = {},
           std::set<std::string> fail = {})
      : role_(std::move(role)), log_(std::move(log)), delay_(delay), fail_(std::move(fail)) {}

  TensorBatch generate(const TensorBatch& prompts) override {
    Call call(*this, "generate");
    auto ids = prompts.at("input_ids");  // (B, T0)
    auto sequences = torch::cat({ids, ids + 1}, 1);  // (B, 2 T0)
    return {{"sequences", sequences}, {"attention_mask", torch::ones_like(sequences)}};
  }
  TensorBatch score(const TensorBatch& batch) override {
    Call call(*this, "score");
    auto sequences = batch.at("sequences").to(torch::kFloat);  // (B, T)
    if (role_ == "actor") return {{"logprobs", -sequences.slice(1, 1) / 100}};     // (B, T-1)
    if (role_ == "reference") return {{"ref_logprobs", -sequences.slice(1, 1) / 50}};  // (B, T-1)
    if (role_ == "critic") return {{"values", sequences.slice(1, 0, -1) / 10}};     // (B, T-1)
    return {{"reward_score", sequences.sum(1)}};                                   // (B)
  }
  Metrics train(const std::vector<TensorBatch>& experience, int64_t step) override {
    Call call(*this, "train");
    Metrics metrics;
    metrics.values["step"] = static_cast<double>(step);
    metrics.values["batches"] = static_cast<double>(experience.size());
    for (const auto& batch : experience)
      for (const auto& [name, tensor] : batch) metrics.values["sum." + name] = tensor.to(torch::kDouble).sum().item<double>();
    return metrics;
  }
  void save(const std::string& path) override {
    Call call(*this, "save");
    saved_ = path;
  }
  void load(const std::string& path) override {
    Call call(*this, "load");
    saved_ = path;
  }
  std::string describe() const override { return "fake " + role_; }
  Generator* generator() override { return this; }
  Trainable* trainable() override { return this; }

 private:
  /// Logs begin/end of a call, sleeps, and fails when told to.
  struct Call {
    Call(FakeRole& role, const std::string& method) : role_(role), what_(role.role_ + "." + method) {
      role_.log_->begin(what_);
      if (role_.delay_.count() > 0) std::this_thread::sleep_for(role_.delay_);
      if (role_.fail_.count(method)) {
        role_.log_->end(what_);
        throw Error("fake " + what_ + " failed on purpose");
      }
    }
    ~Call() { role_.log_->end(what_); }
    FakeRole& role_;
    std::string what_;
  };

  std::string role_;
  std::shared_ptr<EventLog> log_;
  std::chrono::milliseconds delay_;
  std::set<std::string> fail_;
  std::string saved_;
};

}  // namespace troupe::actors::testing
