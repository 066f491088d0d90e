#pragma once
/// Collectives over a fixed group of ranks.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace troupe::transport {

/// Reductions the collectives support. kAvg needs a floating dtype.
enum class ReduceOp { kSum, kAvg, kMax };
std::string reduce_op_name(ReduceOp op);

/// A collective that has been started and may still be running: wait() blocks until it
/// is complete and returns its result. Its tensors stay in use until then; destroying it
/// unwaited waits for it (and drops any error), so none is left running behind its owner.
/// It must not outlive the Communicator that started it.
class StartedCollective {
 public:
  virtual ~StartedCollective() = default;
  /// The result (once: a second call throws troupe::Error).
  virtual at::Tensor wait() = 0;
};

/// An all-to-all whose caller packs and unpacks each pair's elements where the collective
/// wants them, instead of handing over one packed input and taking one packed output.
/// Every rank sends rank d `send_counts[d]` elements and receives `receive_counts[s]`
/// from rank s; the collective asks for them in pieces, each piece once:
/// `pack(d, offset, count, out)` writes elements [offset, offset + count) of what this
/// rank sends rank d into `out`; `unpack(s, offset, count, in)` takes elements
/// [offset, offset + count) of what rank s sent this one from `in`. Pieces of one pair
/// come in increasing offsets.
struct AllToAllStreams {
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> send_counts, receive_counts;
  std::function<void(int peer, int64_t offset, int64_t count, void* out)> pack;
  std::function<void(int peer, int64_t offset, int64_t count, const void* in)> unpack;
};

/// A group of `size()` ranks. Every rank calls the same collectives in the same order,
/// with tensors of the same dtype and shape.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  /// In place: every rank ends with the reduction over ranks of `tensor`.
  virtual void all_reduce(at::Tensor& tensor, ReduceOp op) = 0;
  /// In place on `root`: the reduction over ranks of `tensor`; on the other ranks
  /// `tensor` is left unspecified (it may hold partial results).
  virtual void reduce(at::Tensor& tensor, ReduceOp op, int root) = 0;
  /// input (*S) on every rank -> (W, *S) with rank i's input at index i.
  virtual at::Tensor all_gather(const at::Tensor& input) = 0;
  /// all_gather() started, not waited for: the transfer may run while the caller computes
  /// (the c10d backends), and wait() returns the (W, *S) result. It counts as a collective
  /// when started: every rank starts it at the same point of its sequence of collectives,
  /// whenever it waits. `input` must stay unchanged until then. This default runs
  /// all_gather() at once and hands back the finished result.
  virtual std::unique_ptr<StartedCollective> start_all_gather(const at::Tensor& input);
  /// input (W, *S) on every rank -> (*S): the reduction over ranks of input[rank()].
  virtual at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op) = 0;
  /// input (sum of send_counts), 1-D: its first send_counts[0] elements go to rank 0,
  /// the next send_counts[1] to rank 1, ... Returns (sum of receive_counts): what rank 0
  /// sent to this rank, then rank 1's, ... receive_counts[s] must be what rank s sends
  /// here. This default moves every rank's whole input to every rank (an all-gather of
  /// the inputs padded to the longest) and keeps this rank's parts; c10d backends send
  /// each part only to its rank.
  virtual at::Tensor all_to_all(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                                const std::vector<int64_t>& receive_counts);
  /// all_gather written into `output`: W * input.numel() elements of input's dtype, rank
  /// i's input at [i * n, (i + 1) * n). Saves allocating (and faulting in) and copying a
  /// result; this default copies all_gather's.
  virtual void all_gather_into(const at::Tensor& input, at::Tensor& output);
  /// all_to_all written into `output` (sum of receive_counts elements); this default
  /// copies all_to_all's result.
  virtual void all_to_all_into(const at::Tensor& input, const std::vector<int64_t>& send_counts, at::Tensor& output,
                               const std::vector<int64_t>& receive_counts);
  /// all_to_all without the packed buffers (AllToAllStreams). This default packs into a
  /// buffer, runs all_to_all_into and unpacks its result; the shared-memory communicator
  /// packs straight into its segment and unpacks straight out of it.
  virtual void all_to_all_streams(const AllToAllStreams& streams);
  /// In place: every rank ends with `root`'s tensor.
  virtual void broadcast(at::Tensor& tensor, int root) = 0;
  /// Returns once every rank has called barrier().
  virtual void barrier() = 0;
};

/// Throws troupe::Error naming `where` unless there are `size` counts of each kind and
/// `input` is 1-D with as many elements as the send counts sum to.
void check_all_to_all(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                      const std::vector<int64_t>& receive_counts, int size, const std::string& where);

/// Single-process reference of the collectives, for tests: inputs[i] is rank i's input.
at::Tensor reference_reduce(const std::vector<at::Tensor>& inputs, ReduceOp op);

}  // namespace troupe::transport
