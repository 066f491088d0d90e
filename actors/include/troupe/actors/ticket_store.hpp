#pragma once
/// Where tensor batches wait for their consumers: a producer publishes a named batch and
/// hands out the ticket; a consumer fetches by ticket. The controller only ever sees
/// tickets. Transport implementations (UCX) plug in behind the same interface.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <torch/types.h>

#include <troupe/actors/messages.hpp>

namespace troupe::actors {

/// Named tensors of one batch, all with the same leading dimension B.
using TensorBatch = std::map<std::string, torch::Tensor>;

/// Publishes batches under tickets and resolves tickets back into batches.
class TicketStore {
 public:
  virtual ~TicketStore() = default;
  /// Keeps `batch` until released and returns the ticket that names it.
  virtual Ticket publish(TensorBatch batch) = 0;
  /// The batch of `ticket`, from this process or pulled from its producer. Throws
  /// troupe::Error when the ticket is unknown or its producer unreachable.
  virtual TensorBatch fetch(const Ticket& ticket) = 0;
  /// Forgets the batch of `ticket` (a no-op for tickets of other processes).
  virtual void release(const Ticket& ticket) = 0;
};

/// A process-wide store: batches stay in memory and are handed over without a copy.
/// Thread-safe; fetches of tickets from other processes fail.
class InProcessTicketStore : public TicketStore {
 public:
  /// `node` names this process in the tickets it issues; empty = this host:pid.
  explicit InProcessTicketStore(std::string node = {});
  Ticket publish(TensorBatch batch) override;
  TensorBatch fetch(const Ticket& ticket) override;
  void release(const Ticket& ticket) override;
  const std::string& node() const { return node_; }
  /// Batches held now.
  size_t size() const;
  /// Fetches served so far (a test sees who pulled data).
  int64_t fetch_count() const;

 private:
  std::string node_;
  mutable std::mutex mutex_;
  uint64_t next_id_ = 1;
  int64_t fetches_ = 0;
  std::map<uint64_t, TensorBatch> batches_;
};

/// The tensor `name` of `batch`; throws troupe::Error naming it and `where` when it is
/// missing or undefined.
const torch::Tensor& require_tensor(const TensorBatch& batch, const std::string& name, const std::string& where);

/// "host:pid" of this process.
std::string this_node_name();

/// Concatenates the batches of `tickets` row-wise, in order (rank shards back into one).
TensorBatch fetch_all(TicketStore& store, const TicketList& tickets);

/// Rows [rank * B / world, (rank + 1) * B / world) of every tensor of `batch`.
TensorBatch shard_rows(const TensorBatch& batch, int32_t rank, int32_t world);

}  // namespace troupe::actors
