/// The ticket store that serves its batches to other processes over CAF.
#include "caf_ticket_store.hpp"

#include <chrono>

#include <caf/all.hpp>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::actors {
namespace {

/// How long a pull may take before the consumer gives up on the producer.
constexpr auto fetch_timeout = std::chrono::seconds(120);

TicketServerActor::behavior_type ticket_server(TicketServerActor::pointer,
                                               std::shared_ptr<InProcessTicketStore> store) {
  return {[=](fetch_atom, uint64_t id) -> caf::result<std::vector<char>> {
    Ticket ticket;
    ticket.node = store->node();
    ticket.id = id;
    try {
      return serialize_batch(store->fetch(ticket));
    } catch (const std::exception& e) {
      return caf::make_error(caf::sec::runtime_error, std::string("ticket server of ") + store->node() + ": " + e.what());
    }
  }};
}

}  // namespace

std::vector<char> serialize_batch(const TensorBatch& batch) {
  c10::impl::GenericList names(c10::StringType::get());
  std::vector<torch::Tensor> tensors;
  for (const auto& [name, tensor] : batch) {
    names.push_back(name);
    // Views (row shards) pickle their whole storage; a contiguous copy sends only the rows.
    tensors.push_back(tensor.contiguous().clone());
  }
  return torch::pickle_save(c10::ivalue::Tuple::create({names, tensors}));
}

TensorBatch deserialize_batch(const std::vector<char>& bytes) {
  auto value = torch::pickle_load(bytes);
  auto parts = value.toTuple()->elements();
  auto names = parts.at(0).toList();
  auto tensors = parts.at(1).toTensorList();
  if (names.size() != tensors.size()) throw Error("deserialize_batch: names and tensors differ in count");
  TensorBatch batch;
  for (size_t i = 0; i < names.size(); ++i) batch[names.get(i).toStringRef()] = tensors.get(i);
  return batch;
}

CafTicketStore::CafTicketStore(caf::actor_system& system, std::string node)
    : system_(system), local_(std::make_shared<InProcessTicketStore>(std::move(node))) {
  server_ = system_.spawn(ticket_server, local_);
}

CafTicketStore::~CafTicketStore() { caf::anon_send_exit(server_, caf::exit_reason::user_shutdown); }

Ticket CafTicketStore::publish(TensorBatch batch) {
  auto ticket = local_->publish(std::move(batch));
  ticket.source = caf::actor_cast<caf::actor>(server_);
  return ticket;
}

TensorBatch CafTicketStore::fetch(const Ticket& ticket) {
  if (ticket.node == local_->node()) return local_->fetch(ticket);
  if (!ticket.source)
    throw Error("ticket " + std::to_string(ticket.id) + " of node " + ticket.node + " names no server to pull it from");
  caf::scoped_actor self{system_};
  TensorBatch batch;
  std::string failure;
  self->request(caf::actor_cast<TicketServerActor>(ticket.source), fetch_timeout, fetch_atom::value, ticket.id)
      .receive([&](std::vector<char>& bytes) { batch = deserialize_batch(bytes); },
               [&](caf::error& error) { failure = system_.render(error); });
  if (!failure.empty())
    throw Error("pulling ticket " + std::to_string(ticket.id) + " from node " + ticket.node + " failed: " + failure);
  return batch;
}

void CafTicketStore::release(const Ticket& ticket) { local_->release(ticket); }

}  // namespace troupe::actors
