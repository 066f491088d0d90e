#pragma once
/// Batches a process holds under ticket ids, served to consumers that pull them.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <troupe/transport/tensor_channel.hpp>
#include <troupe/transport/ucx_worker.hpp>

namespace troupe::transport {

/// How a pull waits and where its tensors land.
struct PullOptions : TransferOptions {
  /// Drop the batch from the producer's store once it is sent (a single consumer).
  bool erase = false;
};

/// A producer publishes a batch under a ticket (handed out by the controller); a
/// consumer pulls it straight from the producer's process by (address, ticket).
/// Pulling from one's own address hands over the tensors without a copy. With a
/// UcxWorker a server thread answers remote pulls; without one the store is local only.
class TensorStore {
 public:
  explicit TensorStore(std::shared_ptr<UcxWorker> worker = nullptr,
                       std::chrono::milliseconds serve_timeout = std::chrono::seconds(60));
  ~TensorStore();
  TensorStore(const TensorStore&) = delete;
  TensorStore& operator=(const TensorStore&) = delete;

  /// Where consumers reach this store (empty for a local-only store).
  std::vector<std::uint8_t> address() const;

  /// Holds `batch` under `ticket`; a ticket already held is an error.
  void publish(std::uint64_t ticket, TensorBatch batch);
  /// Drops a ticket; false if it was not held.
  bool erase(std::uint64_t ticket);
  bool contains(std::uint64_t ticket) const;
  std::size_t size() const;
  /// Pulls served to other processes so far.
  std::uint64_t served() const { return served_.load(); }

  /// The batch under `ticket` in the store at `producer`: a hand-over when `producer`
  /// is this store's address (or empty), a UCX transfer otherwise.
  TensorBatch pull(const std::vector<std::uint8_t>& producer, std::uint64_t ticket, const PullOptions& options = {});

 private:
  TensorBatch take_local(std::uint64_t ticket, bool erase, const std::string& where);
  TensorBatch pull_remote(const std::vector<std::uint8_t>& producer, std::uint64_t ticket, const PullOptions& options);
  void serve_loop();
  void serve_one(const ProbedMessage& message);

  std::shared_ptr<UcxWorker> worker_;
  std::chrono::milliseconds serve_timeout_;
  mutable std::mutex mutex_;
  std::map<std::uint64_t, TensorBatch> batches_;
  std::atomic<std::uint64_t> next_request_{1};
  std::atomic<std::uint64_t> served_{0};
  std::atomic<bool> stop_{false};
  std::thread server_;
};

}  // namespace troupe::transport
