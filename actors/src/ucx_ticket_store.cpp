/// The ticket store whose batches cross processes over UCX.
#include "ucx_ticket_store.hpp"

#include <troupe/common/error.hpp>
#include <troupe/transport/tensor_store.hpp>
#include <troupe/transport/ucx_worker.hpp>

namespace troupe::actors {

UcxTicketStore::UcxTicketStore(std::string node)
    : node_(node.empty() ? this_node_name() : std::move(node)),
      worker_(std::make_shared<transport::UcxWorker>()),
      store_(std::make_unique<transport::TensorStore>(worker_)) {}

UcxTicketStore::~UcxTicketStore() = default;

Ticket UcxTicketStore::publish(TensorBatch batch) {
  Ticket ticket;
  ticket.node = node_;
  ticket.id = next_id_++;
  ticket.location = store_->address();
  transport::TensorBatch held;
  for (const auto& [name, tensor] : batch) {
    if (!tensor.defined()) throw Error("ticket store: tensor \"" + name + "\" of a published batch is undefined");
    ticket.names.push_back(name);
    ticket.rows.push_back(tensor.dim() > 0 ? tensor.size(0) : 0);
    held.insert(name, tensor);
  }
  store_->publish(ticket.id, std::move(held));
  return ticket;
}

TensorBatch UcxTicketStore::fetch(const Ticket& ticket) {
  const bool local = ticket.node == node_;
  if (!local && ticket.location.empty())
    throw Error("ticket " + std::to_string(ticket.id) + " of node " + ticket.node +
                " carries no UCX address to pull it from");
  if (!local) {
    std::lock_guard lock(mutex_);
    if (lost_.count(ticket.node))
      throw Error("ticket " + std::to_string(ticket.id) + " of node " + ticket.node + ": that process is lost");
    locations_[ticket.node] = ticket.location;
  }
  transport::TensorBatch pulled;
  try {
    pulled = store_->pull(local ? std::vector<uint8_t>{} : ticket.location, ticket.id);
  } catch (const Error& error) {
    throw Error("ticket " + std::to_string(ticket.id) + " of node " + ticket.node + ": " + error.what());
  }
  if (!local) ++pulled_;
  TensorBatch batch;
  for (const auto& [name, tensor] : pulled) batch[name] = tensor;
  return batch;
}

void UcxTicketStore::release(const Ticket& ticket) {
  if (ticket.node == node_) store_->erase(ticket.id);
}

void UcxTicketStore::mark_node_lost(const std::string& node) {
  std::lock_guard lock(mutex_);
  lost_.insert(node);
  auto found = locations_.find(node);
  if (found != locations_.end()) worker_->mark_peer_failed(found->second);
}

size_t UcxTicketStore::size() const { return store_->size(); }

uint64_t UcxTicketStore::served() const { return store_->served(); }

}  // namespace troupe::actors
