#pragma once
/// Data-parallel ranks as threads of one process: collectives over a shared slot table
/// and a barrier, for engine tests that must not depend on actors/ or transport/.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <vector>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/engine/zero3.hpp>

namespace troupe::test {

/// `world` ranks, each calling the collectives from its own thread in the same order.
/// Sums run over the ranks in rank order on every rank, so every rank gets the same bits.
/// A rank that waits more than a minute for the others throws instead of hanging the run.
class ThreadCollectives {
 public:
  explicit ThreadCollectives(int world) : world_(world), slots_(static_cast<size_t>(world)) {}

  engine::Zero3Collectives zero3(int rank) {
    engine::Zero3Collectives c;
    c.rank = rank;
    c.world = world_;
    c.all_gather = [this, rank](const torch::Tensor& chunk, torch::Tensor& flat) {
      publish(rank, chunk);
      const int64_t n = chunk.numel();
      for (int r = 0; r < world_; ++r) flat.narrow(0, r * n, n).copy_(slots_[static_cast<size_t>(r)]);
      finish(rank);
    };
    // Started: the ranks meet now (where the gather counts as a collective); `flat` holds
    // NaN until it is waited for, so a layer used before its gather completes shows.
    c.start_all_gather = [this, rank](const torch::Tensor& chunk, torch::Tensor& flat) -> std::function<void()> {
      auto arrived = torch::empty_like(flat);  // (world * C)
      publish(rank, chunk);
      const int64_t n = chunk.numel();
      for (int r = 0; r < world_; ++r) arrived.narrow(0, r * n, n).copy_(slots_[static_cast<size_t>(r)]);
      finish(rank);
      if (flat.is_floating_point()) flat.fill_(std::numeric_limits<double>::quiet_NaN());
      ++unfinished_gathers_[static_cast<size_t>(rank)];
      return [this, rank, arrived, flat] {
        flat.copy_(arrived);
        --unfinished_gathers_[static_cast<size_t>(rank)];
      };
    };
    c.reduce_scatter_sum = [this, rank](const torch::Tensor& flat, torch::Tensor& chunk) {
      publish(rank, flat);
      const int64_t n = chunk.numel();
      chunk.zero_();
      for (int r = 0; r < world_; ++r) chunk.add_(slots_[static_cast<size_t>(r)].narrow(0, rank * n, n));
      finish(rank);
    };
    c.all_reduce_sum = [this, rank](torch::Tensor& tensor) {
      publish(rank, tensor.clone());
      auto sum = torch::zeros_like(tensor);
      for (int r = 0; r < world_; ++r) sum.add_(slots_[static_cast<size_t>(r)]);
      finish(rank);
      tensor.copy_(sum);
    };
    c.all_to_all = [this, rank](const torch::Tensor& send, const std::vector<int64_t>& send_counts, torch::Tensor& receive,
                                const std::vector<int64_t>& receive_counts) {
      publish(rank, send);
      // Rank s's part for this rank starts after what s sends to the ranks before it;
      // every rank's counts travel beside its buffer.
      counts_[static_cast<size_t>(rank)] = send_counts;
      barrier();
      int64_t at = 0;
      for (int s = 0; s < world_; ++s) {
        const auto& theirs = counts_[static_cast<size_t>(s)];
        int64_t offset = 0;
        for (int d = 0; d < rank; ++d) offset += theirs[static_cast<size_t>(d)];
        const int64_t n = theirs[static_cast<size_t>(rank)];
        if (n != receive_counts[static_cast<size_t>(s)]) throw Error("ThreadCollectives: all_to_all counts disagree");
        receive.narrow(0, at, n).copy_(slots_[static_cast<size_t>(s)].narrow(0, offset, n));
        at += n;
      }
      finish(rank);
    };
    // The same exchange packed and unpacked in pieces of 5 elements (a piece may start or
    // end inside a run of the caller's), as the shared-memory communicator's slots do.
    c.all_to_all_streams = [this, rank](torch::ScalarType dtype, const std::vector<int64_t>& send_counts,
                                        const std::vector<int64_t>& receive_counts,
                                        const engine::Zero3Collectives::PackPiece& pack,
                                        const engine::Zero3Collectives::UnpackPiece& unpack) {
      constexpr int64_t kPiece = 5;
      int64_t total = 0;
      for (auto n : send_counts) total += n;
      auto send = torch::empty({total}, torch::TensorOptions().dtype(dtype));  // (sum of send_counts)
      const int64_t element = send.element_size();
      int64_t at = 0;
      for (int d = 0; d < world_; ++d) {
        const int64_t n = send_counts[static_cast<size_t>(d)];
        for (int64_t offset = 0; offset < n; offset += kPiece)
          pack(d, offset, std::min(kPiece, n - offset), static_cast<char*>(send.data_ptr()) + (at + offset) * element);
        at += n;
      }
      publish(rank, send);
      counts_[static_cast<size_t>(rank)] = send_counts;
      barrier();
      for (int s = 0; s < world_; ++s) {
        const auto& theirs = counts_[static_cast<size_t>(s)];
        int64_t start = 0;
        for (int d = 0; d < rank; ++d) start += theirs[static_cast<size_t>(d)];
        const int64_t n = theirs[static_cast<size_t>(rank)];
        if (n != receive_counts[static_cast<size_t>(s)]) throw Error("ThreadCollectives: all_to_all counts disagree");
        const auto* from = static_cast<const char*>(slots_[static_cast<size_t>(s)].data_ptr());
        for (int64_t offset = 0; offset < n; offset += kPiece)
          unpack(s, offset, std::min(kPiece, n - offset), from + (start + offset) * element);
      }
      finish(rank);
    };
    return c;
  }

  /// ZeRO stage 1/2's collectives (TrainEngine::set_optimizer_sharding) at `stage`.
  engine::TrainEngine::OptimizerSharding sharding(int rank, int stage) {
    engine::TrainEngine::OptimizerSharding s;
    s.rank = rank;
    s.world = world_;
    s.stage = stage;
    s.broadcast = [this, rank](torch::Tensor& tensor, int root) {
      publish(rank, tensor.clone());
      if (rank != root) tensor.copy_(slots_[static_cast<size_t>(root)]);
      finish(rank);
    };
    s.reduce_sum = [this, rank](torch::Tensor& tensor, int root) {
      publish(rank, tensor.clone());
      if (rank == root) tensor.copy_(sum_of_slots());
      finish(rank);
    };
    s.all_reduce_sum = [this, rank](torch::Tensor& tensor) {
      publish(rank, tensor.clone());
      auto sum = sum_of_slots();
      finish(rank);
      tensor.copy_(sum);
    };
    s.all_reduce_max = [this, rank](torch::Tensor& tensor) {
      publish(rank, tensor.clone());
      auto most = slots_.front().clone();
      for (int r = 1; r < world_; ++r) most = torch::max(most, slots_[static_cast<size_t>(r)]);
      finish(rank);
      tensor.copy_(most);
    };
    return s;
  }

  /// Stage 0's gradient sync: every gradient summed over the ranks in rank order, then
  /// divided by the world, as c10d's Gloo average does.
  engine::TrainEngine::GradientSync average_gradients(int rank) {
    return [this, rank](const std::vector<torch::Tensor>& parameters) {
      for (const auto& p : parameters) {
        auto grad = p.grad().defined() ? p.grad() : torch::zeros_like(p);
        publish(rank, grad.clone());
        auto sum = sum_of_slots();
        finish(rank);
        grad.copy_(sum.div_(world_));
        if (!p.grad().defined()) const_cast<torch::Tensor&>(p).mutable_grad() = grad;
      }
    };
  }

  /// Gathers `rank` started (start_all_gather) and has not waited for. Read it on the
  /// rank's own thread, or once the ranks have joined.
  int64_t unfinished_gathers(int rank) const { return unfinished_gathers_[static_cast<size_t>(rank)]; }

 private:
  torch::Tensor sum_of_slots() const {
    auto sum = slots_.front().clone();
    for (int r = 1; r < world_; ++r) sum.add_(slots_[static_cast<size_t>(r)]);
    return sum;
  }

  /// Puts this rank's tensor in its slot and waits until every rank has.
  void publish(int rank, const torch::Tensor& tensor) {
    slots_[static_cast<size_t>(rank)] = tensor;
    barrier();
  }

  /// Waits until every rank has read the slots, then lets go of this rank's tensor.
  void finish(int rank) {
    barrier();
    slots_[static_cast<size_t>(rank)] = torch::Tensor();
  }

  void barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t generation = generation_;
    if (++arrived_ == world_) {
      arrived_ = 0;
      ++generation_;
      all_arrived_.notify_all();
      return;
    }
    if (!all_arrived_.wait_for(lock, std::chrono::minutes(1), [&] { return generation_ != generation; }))
      throw Error("ThreadCollectives: a rank waited a minute for the others (a rank failed or the calls diverged)");
  }

  int world_;
  std::vector<torch::Tensor> slots_;
  std::vector<std::vector<int64_t>> counts_ = std::vector<std::vector<int64_t>>(static_cast<size_t>(world_));
  std::mutex mutex_;
  std::condition_variable all_arrived_;
  int arrived_ = 0;
  int64_t generation_ = 0;
  std::vector<int64_t> unfinished_gathers_ = std::vector<int64_t>(static_cast<size_t>(world_), 0);
};

}  // namespace troupe::test
