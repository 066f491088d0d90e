#pragma once
/// A Communicator over any c10d::Backend (ProcessGroupGloo, ProcessGroupNCCL): the
/// collectives in troupe's terms, the tensors moved to the backend's device and back.
#include <cstdint>
#include <string>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <troupe/transport/communicator.hpp>

namespace troupe::transport {

class BackendCommunicator final : public Communicator {
 public:
  /// `name` ("gloo", "nccl") and `group` appear in errors; `device` is where the
  /// backend takes its tensors (the CPU for gloo, one CUDA device for NCCL). With the
  /// group's rendezvous `store`, a collective that fails (a timeout) names the ranks that
  /// never reached it: each failing rank records how far it got there.
  BackendCommunicator(c10::intrusive_ptr<c10d::Backend> backend, int rank, int size, std::string group,
                      std::string name, at::Device device, c10::intrusive_ptr<c10d::Store> store = {});

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce(at::Tensor& tensor, ReduceOp op) override;
  void reduce(at::Tensor& tensor, ReduceOp op, int root) override;
  at::Tensor all_gather(const at::Tensor& input) override;
  /// Returns the c10d Work unwaited: gloo's worker threads (NCCL's stream) move the
  /// chunks while the caller computes.
  std::unique_ptr<StartedCollective> start_all_gather(const at::Tensor& input) override;
  at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op) override;
  at::Tensor all_to_all(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                        const std::vector<int64_t>& receive_counts) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;

 private:
  /// `tensor` itself when the backend can use it in place (contiguous, on its device), else a copy.
  at::Tensor on_backend(const at::Tensor& tensor) const;
  void check_average(const at::Tensor& tensor, ReduceOp op, const std::string& what) const;
  friend class StartedBackendAllGather;
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) const;
  /// Waits for collective number `op` (counted when it started).
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what, int64_t op) const;
  std::string where(const std::string& op) const;
  /// After collective number `op` failed: "ranks that did not arrive: ..." from what the
  /// other failing ranks recorded in the store within a short wait.
  std::string absent_ranks(int64_t op) const;

  c10::intrusive_ptr<c10d::Backend> backend_;
  int rank_, size_;
  std::string group_, name_;
  at::Device device_;
  c10::intrusive_ptr<c10d::Store> store_;
  mutable int64_t collectives_ = 0;  // started so far: every rank counts the same sequence
};

/// "transport: NAME group 'GROUP' (rank R of S)": how errors name a group.
std::string describe_group(const std::string& name, const std::string& group, int rank, int size);
/// Throws unless 0 <= rank < size.
void check_rank(const std::string& name, const std::string& group, int rank, int size);

}  // namespace troupe::transport
