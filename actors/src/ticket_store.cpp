/// The in-process ticket store and batch helpers.
#include <troupe/actors/ticket_store.hpp>

#include <unistd.h>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::actors {

std::string this_node_name() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return std::string(host[0] ? host : "localhost") + ":" + std::to_string(getpid());
}

InProcessTicketStore::InProcessTicketStore(std::string node)
    : node_(node.empty() ? this_node_name() : std::move(node)) {}

Ticket InProcessTicketStore::publish(TensorBatch batch) {
  Ticket ticket;
  ticket.node = node_;
  for (const auto& [name, tensor] : batch) {
    ticket.names.push_back(name);
    ticket.rows.push_back(tensor.defined() && tensor.dim() > 0 ? tensor.size(0) : 0);
  }
  std::lock_guard lock(mutex_);
  ticket.id = next_id_++;
  batches_.emplace(ticket.id, std::move(batch));
  return ticket;
}

TensorBatch InProcessTicketStore::fetch(const Ticket& ticket) {
  if (ticket.node != node_)
    throw Error("ticket " + std::to_string(ticket.id) + " of node " + ticket.node +
                " is not held by this process (" + node_ + ") and this store cannot reach other processes");
  std::lock_guard lock(mutex_);
  auto found = batches_.find(ticket.id);
  if (found == batches_.end())
    throw Error("ticket " + std::to_string(ticket.id) + " of node " + node_ + " is unknown or released");
  ++fetches_;
  return found->second;
}

void InProcessTicketStore::release(const Ticket& ticket) {
  if (ticket.node != node_) return;
  std::lock_guard lock(mutex_);
  batches_.erase(ticket.id);
}

size_t InProcessTicketStore::size() const {
  std::lock_guard lock(mutex_);
  return batches_.size();
}

int64_t InProcessTicketStore::fetch_count() const {
  std::lock_guard lock(mutex_);
  return fetches_;
}

TensorBatch fetch_all(TicketStore& store, const TicketList& tickets) {
  if (tickets.tickets.empty()) throw Error("fetch_all: the ticket list is empty");
  if (tickets.tickets.size() == 1) return store.fetch(tickets.tickets.front());
  std::map<std::string, std::vector<torch::Tensor>> parts;
  for (const auto& ticket : tickets.tickets) {
    auto batch = store.fetch(ticket);
    if (!parts.empty() && batch.size() != parts.size())
      throw Error("fetch_all: ticket " + std::to_string(ticket.id) + " of " + ticket.node +
                  " holds other tensors than the first shard");
    for (auto& [name, tensor] : batch) parts[name].push_back(tensor);
  }
  TensorBatch joined;
  for (auto& [name, tensors] : parts) {
    if (tensors.size() != tickets.tickets.size())
      throw Error("fetch_all: tensor \"" + name + "\" is missing from some shards");
    joined[name] = torch::cat(tensors, 0);
  }
  return joined;
}

TensorBatch shard_rows(const TensorBatch& batch, int32_t rank, int32_t world) {
  if (world <= 1) return batch;
  if (rank < 0 || rank >= world)
    throw Error("shard_rows: rank " + std::to_string(rank) + " outside world of " + std::to_string(world));
  TensorBatch shard;
  for (const auto& [name, tensor] : batch) {
    const int64_t rows = tensor.size(0);
    const int64_t begin = rows * rank / world;
    const int64_t end = rows * (rank + 1) / world;
    shard[name] = tensor.slice(0, begin, end);
  }
  return shard;
}

const torch::Tensor& require_tensor(const TensorBatch& batch, const std::string& name, const std::string& where) {
  auto found = batch.find(name);
  if (found == batch.end() || !found->second.defined())
    throw Error(where + ": the batch has no tensor \"" + name + "\"");
  return found->second;
}

}  // namespace troupe::actors
