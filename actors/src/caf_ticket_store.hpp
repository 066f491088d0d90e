#pragma once
/// A TicketStore that also serves its batches to other processes through a CAF ticket
/// server actor: a consumer elsewhere pulls the bytes straight from the producer. The
/// path for control-plane-sized batches until the UCX channel replaces it.
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include <troupe/actors/ticket_store.hpp>

namespace troupe::actors {

/// The ticket server's typed signature: a batch by ticket id, serialized.
using TicketServerActor = caf::typed_actor<caf::replies_to<fetch_atom, uint64_t>::with<std::vector<char>>>;

/// An InProcessTicketStore plus a ticket server; tickets it issues carry the server.
class CafTicketStore : public TicketStore {
 public:
  explicit CafTicketStore(caf::actor_system& system, std::string node = {});
  ~CafTicketStore() override;
  Ticket publish(TensorBatch batch) override;
  /// Local tickets are handed over; others are pulled from `ticket.source` (blocking:
  /// call it from a detached actor or a plain thread).
  TensorBatch fetch(const Ticket& ticket) override;
  void release(const Ticket& ticket) override;
  InProcessTicketStore& local() { return *local_; }

 private:
  caf::actor_system& system_;
  std::shared_ptr<InProcessTicketStore> local_;
  TicketServerActor server_;
};

/// Pickled bytes of `batch` and back (what the ticket server sends).
std::vector<char> serialize_batch(const TensorBatch& batch);
TensorBatch deserialize_batch(const std::vector<char>& bytes);

}  // namespace troupe::actors
