#pragma once
/// Collectives between ranks of one machine through a POSIX shared-memory segment, as
/// DeepSpeed's "shm" comm backend: each rank copies its part into its slot of the
/// segment, the ranks meet at a barrier of atomics in the segment, and each copies out
/// (or reduces) what it needs. No sockets, no kernel copies: memcpy speed.
///
/// Memory: the segment holds one slot of `slot_bytes` per rank (16 MiB by default), so
/// W ranks share W x slot_bytes of memory (64 MiB for 4 ranks), allocated once on the
/// machine. Every rank maps all of it and reads every slot, so once touched it counts in
/// each process's RSS (as shared pages: the machine pays it once). Messages larger than
/// a slot go through in pieces; the segment never grows.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <troupe/transport/communicator.hpp>

namespace troupe::transport {

/// "HOSTNAME boot_id": equal for two processes on the same running machine (the boot id
/// changes at every boot, so a host name reused by another machine does not match).
std::string this_host_id();

/// Whether ranks 0..size-1 of `group` all run on this machine: each rank publishes
/// this_host_id() in `store` and reads the others', so every rank gets the same answer.
/// Throws troupe::Error naming the group when the others do not publish within `timeout`.
bool ranks_share_host(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, const std::string& group,
                      std::chrono::milliseconds timeout);

/// Every collective over one shared-memory segment; ranks may be threads of one process
/// or separate processes of one machine. Reductions are deterministic and the same on
/// every rank: rank r reduces the r-th 1/W of each piece over ranks 0, 1, ..., W-1 in
/// that order, then every rank copies the reduced parts. Tensors may be anywhere;
/// device tensors are staged through the host.
class SharedMemoryCommunicator final : public Communicator {
 public:
  static constexpr int64_t kDefaultSlotBytes = int64_t{16} << 20;

  /// Joins group `group` as `rank` of `size`. Rank 0 creates the segment (a unique name:
  /// the group and a random nonce) and publishes its name in `store`; the others map it;
  /// rank 0 unlinks it once all have, so nothing stays in /dev/shm if a process dies.
  /// A collective waits at most `timeout` for the other ranks, then throws naming the
  /// ranks that did not arrive. Throws troupe::Error when the ranks are on different
  /// machines (naming which is where), or the segment cannot be made.
  SharedMemoryCommunicator(c10::intrusive_ptr<c10d::Store> store, int rank, int size, const std::string& group = "default",
                           std::chrono::milliseconds timeout = std::chrono::seconds(60),
                           int64_t slot_bytes = kDefaultSlotBytes);
  ~SharedMemoryCommunicator() override;
  SharedMemoryCommunicator(const SharedMemoryCommunicator&) = delete;
  SharedMemoryCommunicator& operator=(const SharedMemoryCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce(at::Tensor& tensor, ReduceOp op) override;
  /// The all-reduce's first half: the root copies every rank's reduced part, the other
  /// ranks keep their input with their own reduced part in it.
  void reduce(at::Tensor& tensor, ReduceOp op, int root) override;
  at::Tensor all_gather(const at::Tensor& input) override;
  /// Straight from the slots into `output` when it is contiguous on the CPU.
  void all_gather_into(const at::Tensor& input, at::Tensor& output) override;
  at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op) override;
  /// Each part goes only to its rank, through a 1/W share of the sender's slot.
  at::Tensor all_to_all(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                        const std::vector<int64_t>& receive_counts) override;
  void all_to_all_into(const at::Tensor& input, const std::vector<int64_t>& send_counts, at::Tensor& output,
                       const std::vector<int64_t>& receive_counts) override;
  /// Packs into the sender's slot and unpacks out of it: two copies per element.
  void all_to_all_streams(const AllToAllStreams& streams) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;

  /// Bytes of the shared segment (header and W slots).
  int64_t segment_bytes() const { return static_cast<int64_t>(mapped_bytes_); }

 private:
  /// Starts collective `what`: throws if an earlier one failed, counts it, names it for errors.
  void begin(const std::string& what);
  /// Reduces `dense` (contiguous, CPU) in pieces; every rank (root < 0) or only `root`
  /// ends with the result.
  void reduce_pieces(at::Tensor& dense, ReduceOp op, int root);
  /// Increments this rank's barrier generation and waits until every rank has reached it.
  void arrive_and_wait();
  /// Throws (and marks this communicator unusable) naming the ranks behind `generation`.
  [[noreturn]] void fail_waiting(uint64_t generation, std::chrono::milliseconds waited);
  void check_average(const at::Tensor& tensor, ReduceOp op, const std::string& what) const;
  void check_root(int root, const std::string& what) const;
  char* slot(int rank) const;
  std::string where(const std::string& op) const;

  int rank_, size_;
  std::string group_;
  std::chrono::milliseconds timeout_;
  int64_t slot_bytes_;
  std::string segment_name_;
  void* mapped_ = nullptr;
  size_t mapped_bytes_ = 0;
  bool unlinked_ = false;
  uint64_t generation_ = 0;   // barriers passed: every rank counts the same sequence
  int64_t collectives_ = 0;   // started so far, for errors
  std::string what_;          // the collective under way, for errors
  std::string broken_;        // why this communicator failed, once it has
};

}  // namespace troupe::transport
