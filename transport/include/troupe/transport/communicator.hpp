#pragma once
/// Collectives over a fixed group of ranks.
#include <string>

#include <ATen/ATen.h>

namespace troupe::transport {

/// Reductions the collectives support. kAvg needs a floating dtype.
enum class ReduceOp { kSum, kAvg, kMax };
std::string reduce_op_name(ReduceOp op);

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
  /// input (W, *S) on every rank -> (*S): the reduction over ranks of input[rank()].
  virtual at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op) = 0;
  /// In place: every rank ends with `root`'s tensor.
  virtual void broadcast(at::Tensor& tensor, int root) = 0;
  /// Returns once every rank has called barrier().
  virtual void barrier() = 0;
};

/// Single-process reference of the collectives, for tests: inputs[i] is rank i's input.
at::Tensor reference_reduce(const std::vector<at::Tensor>& inputs, ReduceOp op);

}  // namespace troupe::transport
