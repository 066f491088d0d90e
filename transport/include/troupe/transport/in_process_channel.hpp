#pragma once
/// A channel between threads of one process: hands over the tensors, never copies.
#include <condition_variable>
#include <deque>
#include <mutex>

#include <troupe/transport/tensor_channel.hpp>

namespace troupe::transport {

/// The receiver gets the very tensors the sender sent (same storage). A sender that
/// keeps writing to them after send() is seen by the receiver: that is the contract
/// of a hand-over.
class InProcessChannel final : public TensorChannel {
 public:
  explicit InProcessChannel(TransferOptions options = {}) : options_(options) {}

  void send(const TensorBatch& batch) override;
  TensorBatch receive() override;
  /// Copies into `destination` (its tensors keep their storage); the only copying path.
  void receive_into(TensorBatch& destination) override;
  /// Batches sent and not yet received.
  std::size_t pending() const;

 private:
  TransferOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<TensorBatch> queue_;
};

}  // namespace troupe::transport
