#pragma once
/// Helpers shared by the ZeRO stage 3 tests: the fixture model, ranks as threads, and
/// the relative difference the comparisons use.
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include <troupe/models/pretrained.hpp>

#include "../models/model_fixtures.hpp"

namespace troupe::test {

/// The tiny OPT fixture without dropout, so every run draws the same numbers.
inline models::CausalLM load_opt() {
  auto model = models::load_pretrained(test::fixture_dir("opt"));
  models::set_dropout(*model, 0.0);
  return model;
}

inline double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

/// One intra-op thread for its lifetime (new threads inherit it), the previous count
/// after: kWorld rank threads, each with an intra-op pool spinning on a busy 2-core
/// machine, took 17 s for what takes 1 s this way.
class OneIntraOpThread {
 public:
  OneIntraOpThread() : previous_(at::get_num_threads()) { at::set_num_threads(1); }
  ~OneIntraOpThread() { at::set_num_threads(previous_); }
  OneIntraOpThread(const OneIntraOpThread&) = delete;
  OneIntraOpThread& operator=(const OneIntraOpThread&) = delete;

 private:
  int previous_;
};

/// Runs `body(rank)` on `world` threads and rethrows the first failure.
inline void run_ranks(const std::function<void(int)>& body, int world = 2) {
  OneIntraOpThread one_thread;
  std::vector<std::exception_ptr> failures(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world; ++rank)
    threads.emplace_back([&, rank] {
      try {
        body(rank);
      } catch (...) {
        failures[static_cast<size_t>(rank)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& failure : failures)
    if (failure) std::rethrow_exception(failure);
}

}  // namespace troupe::test
