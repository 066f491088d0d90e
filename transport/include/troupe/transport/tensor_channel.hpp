#pragma once
/// The channel interface: one producer sends named tensor batches, one consumer receives them.
#include <chrono>

#include <ATen/ATen.h>

#include <troupe/transport/tensor_batch.hpp>

namespace troupe::transport {

/// Limits and placement of a transfer.
struct TransferOptions {
  /// How long a send or receive may wait for the other side before troupe::Error.
  std::chrono::milliseconds timeout{60000};
  /// Where received tensors are placed (device tensors are staged through host
  /// memory unless UCX reports CUDA memory support).
  at::Device device = at::kCPU;
};

/// Moves batches in order from one sender to one receiver.
class TensorChannel {
 public:
  virtual ~TensorChannel() = default;
  /// Sends `batch`; returns once the sender may modify its tensors again.
  virtual void send(const TensorBatch& batch) = 0;
  /// Waits for the next batch; throws troupe::Error after the timeout.
  virtual TensorBatch receive() = 0;
  /// Receives the next batch into `destination`'s tensors, which must have the
  /// incoming names, dtypes and shapes (else troupe::Error).
  virtual void receive_into(TensorBatch& destination) = 0;
};

}  // namespace troupe::transport
