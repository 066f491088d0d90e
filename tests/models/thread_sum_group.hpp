#pragma once
/// Ranks as threads of this process, summing tensors through shared memory: the
/// all-reduce a tensor-parallel test needs, without a network. Every rank gets the
/// same bits (the sum is taken once, in rank order).
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include <torch/torch.h>

#include <troupe/models/tensor_parallel.hpp>

namespace troupe::test {

class ThreadSumGroup {
 public:
  explicit ThreadSumGroup(int world) : world_(world), inputs_(static_cast<size_t>(world)) {}

  /// Rank `rank`'s handle; its all_reduce_sum blocks until every rank has called it.
  models::TensorParallelRank rank(int rank) {
    return {world_, rank, [this, rank](torch::Tensor& tensor) { all_reduce_sum(rank, tensor); }};
  }

  int64_t all_reduces() const { return rounds_; }

 private:
  void all_reduce_sum(int rank, torch::Tensor& tensor) {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t round = rounds_;
    inputs_[static_cast<size_t>(rank)] = tensor.detach().clone();
    if (++arrived_ == world_) {
      sum_ = inputs_[0].clone();
      for (int i = 1; i < world_; ++i) sum_ += inputs_[static_cast<size_t>(i)];
      arrived_ = 0;
      ++rounds_;  // the next round's sum is set only once every rank has copied this one
      changed_.notify_all();
    } else {
      changed_.wait(lock, [&] { return rounds_ != round; });
    }
    tensor.copy_(sum_);
  }

  int world_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<torch::Tensor> inputs_;
  torch::Tensor sum_;
  int arrived_ = 0;
  int64_t rounds_ = 0;
};

}  // namespace troupe::test
