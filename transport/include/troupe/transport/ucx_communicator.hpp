#pragma once
/// Ring collectives over UCX, with rendezvous through a c10d store.
///
/// The alternative to c10d's ProcessGroupGloo (c10d_communicator.hpp) on the same UCX
/// worker the channels use: it needs no gloo headers, and it moves device tensors
/// through the host like the channels do. troupe_bench_allreduce compares the two.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <troupe/transport/c10d_store.hpp>

#include <troupe/transport/communicator.hpp>
#include <troupe/transport/ucx_worker.hpp>

namespace troupe::transport {

/// Ring all-reduce (reduce-scatter + all-gather), ring all-gather, ring reduce-scatter
/// and a pipelined ring broadcast. Bandwidth-optimal for large tensors: each rank sends
/// 2 (W-1)/W of the data for all-reduce. Device tensors are staged through the host.
class UcxCommunicator final : public Communicator {
 public:
  /// Joins group `group` as `rank` of `size`; blocks until both ring neighbours have
  /// published their addresses in `store`.
  UcxCommunicator(std::shared_ptr<UcxWorker> worker, c10::intrusive_ptr<c10d::Store> store, int rank, int size,
                  const std::string& group = "default", std::chrono::milliseconds timeout = std::chrono::seconds(60));

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce(at::Tensor& tensor, ReduceOp op) override;
  /// An all-reduce: every rank ends with the result (a ring has no cheaper reduce).
  void reduce(at::Tensor& tensor, ReduceOp op, int root) override;
  at::Tensor all_gather(const at::Tensor& input) override;
  at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;

 private:
  /// Sends `send` to the right neighbour while receiving `receive` from the left one.
  void ring_exchange(const at::Tensor& send, at::Tensor& receive, std::uint64_t step, const std::string& what);
  /// Ring reduce-scatter over `chunks` (views into one buffer); rank r ends holding the
  /// full reduction of chunk (r + 1 + shift) mod W.
  void ring_reduce_scatter(std::vector<at::Tensor>& chunks, ReduceOp op, int shift, std::uint64_t& step);
  /// Ring all-gather over `chunks`, rank r starting with chunk (r + 1 + shift) mod W complete.
  void ring_all_gather(std::vector<at::Tensor>& chunks, int shift, std::uint64_t& step);
  ucp_tag_t tag(std::uint64_t step) const;
  std::string where(const std::string& op) const;

  std::shared_ptr<UcxWorker> worker_;
  int rank_;
  int size_;
  std::string group_;
  std::chrono::milliseconds timeout_;
  std::uint16_t group_id_;
  std::uint64_t op_count_ = 0;
  UcxEndpoint* right_ = nullptr;
  UcxEndpoint* left_ = nullptr;
};

}  // namespace troupe::transport
