#pragma once
/// A TicketStore whose batches other processes pull over UCX: a ticket carries the
/// producer's UCX worker address, and a consumer elsewhere receives the raw tensor
/// bytes straight from the producer (transport::TensorStore's pull protocol). The
/// controller moves only the ticket; tensors never pass through CAF.
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <vector>
#include <memory>
#include <string>

#include <troupe/actors/ticket_store.hpp>

namespace troupe::transport {
class TensorStore;
class UcxWorker;
}  // namespace troupe::transport

namespace troupe::actors {

class UcxTicketStore : public TicketStore {
 public:
  /// Starts this process's UCX worker and the server thread answering pulls. `node`
  /// names this process in its tickets; empty = this host:pid.
  explicit UcxTicketStore(std::string node = {});
  ~UcxTicketStore() override;
  Ticket publish(TensorBatch batch) override;
  /// Local tickets are handed over without a copy; others are pulled over UCX from the
  /// address in `ticket.location`. Throws troupe::Error naming the ticket and producer
  /// when it is unknown, released, or the producer is unreachable.
  TensorBatch fetch(const Ticket& ticket) override;
  void release(const Ticket& ticket) override;
  const std::string& node() const { return node_; }
  /// Batches held now.
  size_t size() const;
  /// Pulls this store has served to other processes.
  uint64_t served() const;
  /// Batches this store has pulled from other processes.
  uint64_t pulled() const { return pulled_.load(); }
  /// Ends at once every pull, now or later, from `node` (a process the cluster lost):
  /// without UCX's own peer-failure detection it would wait for its timeout.
  void mark_node_lost(const std::string& node);

 private:
  std::string node_;
  std::shared_ptr<transport::UcxWorker> worker_;
  std::unique_ptr<transport::TensorStore> store_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<uint64_t> pulled_{0};
  std::mutex mutex_;
  std::map<std::string, std::vector<uint8_t>> locations_;  // node -> UCX address, from tickets seen
  std::set<std::string> lost_;
};

}  // namespace troupe::actors
