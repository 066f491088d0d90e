#include <troupe/transport/tensor_store.hpp>


#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>

#include "batch_io.hpp"

namespace troupe::transport {
namespace {

std::string ticket_text(std::uint64_t ticket) { return "ticket " + std::to_string(ticket); }

const ucp_tag_t kPullRequestTag = UcxTag::make(UcxTag::kPullRequest, 0, 0);

}  // namespace

TensorStore::TensorStore(std::shared_ptr<UcxWorker> worker, std::chrono::milliseconds serve_timeout)
    : worker_(std::move(worker)), serve_timeout_(serve_timeout) {
  if (worker_) server_ = std::thread([this] { serve_loop(); });
}

TensorStore::~TensorStore() {
  stop_ = true;
  if (server_.joinable()) server_.join();
}

std::vector<std::uint8_t> TensorStore::address() const {
  return worker_ ? worker_->address() : std::vector<std::uint8_t>{};
}

void TensorStore::publish(std::uint64_t ticket, TensorBatch batch) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!batches_.emplace(ticket, std::move(batch)).second) {
    throw Error("transport: TensorStore::publish: " + ticket_text(ticket) + " is already held");
  }
}

bool TensorStore::erase(std::uint64_t ticket) {
  std::lock_guard<std::mutex> lock(mutex_);
  return batches_.erase(ticket) != 0;
}

bool TensorStore::contains(std::uint64_t ticket) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return batches_.count(ticket) != 0;
}

std::size_t TensorStore::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return batches_.size();
}

TensorBatch TensorStore::take_local(std::uint64_t ticket, bool erase, const std::string& where) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = batches_.find(ticket);
  if (found == batches_.end()) throw Error(where + ": " + ticket_text(ticket) + " is not held here");
  auto batch = found->second;
  if (erase) batches_.erase(found);
  return batch;
}

TensorBatch TensorStore::pull(const std::vector<std::uint8_t>& producer, std::uint64_t ticket,
                              const PullOptions& options) {
  if (producer.empty() || (worker_ && producer == worker_->address())) {
    auto batch = take_local(ticket, options.erase, "transport: local pull");
    if (options.device.is_cpu()) return batch;
    TensorBatch moved;
    for (const auto& [name, tensor] : batch) moved.insert(name, tensor.to(options.device));
    return moved;
  }
  if (!worker_) {
    throw Error("transport: pull of " + ticket_text(ticket) + " from another process needs a TensorStore with a UcxWorker");
  }
  return pull_remote(producer, ticket, options);
}

TensorBatch TensorStore::pull_remote(const std::vector<std::uint8_t>& producer, std::uint64_t ticket,
                                     const PullOptions& options) {
  UcxEndpoint* endpoint = nullptr;
  try {
    endpoint = &worker_->endpoint(producer);
  } catch (const Error& error) {
    std::string cause = error.what();
    if (cause.rfind("transport: ", 0) == 0) cause = cause.substr(11);
    throw Error("transport: pull of " + ticket_text(ticket) + ": " + cause);
  }
  auto& ep = *endpoint;
  auto deadline = deadline_after(options.timeout);
  PullMeta request;
  request.ticket = ticket;
  request.request_id = next_request_++;
  request.reply_address = worker_->address();
  request.erase = options.erase;
  auto what = "pull of " + ticket_text(ticket) + " from " + ep.peer();

  auto bytes = encode_pull_meta(request);
  auto sending = worker_->send(ep, bytes.data(), bytes.size(), kPullRequestTag, UCS_MEMORY_TYPE_HOST, what + " (request)");
  worker_->wait(sending, deadline);

  BatchMeta meta;
  auto reply_tag = UcxTag::make(UcxTag::kPullReply, request.request_id, 0);
  auto batch = receive_batch(*worker_, reply_tag, options.device, nullptr, deadline, what, &meta, &ep);
  if (meta.ticket != ticket) {
    throw Error("transport: " + what + " answered with " + ticket_text(meta.ticket));
  }
  return batch;
}

void TensorStore::serve_loop() {
  // Spin while there is traffic, back off to short sleeps when idle: two cores are
  // shared by every process on a small machine.
  auto idle_sleep = std::chrono::microseconds(0);
  while (!stop_) {
    bool busy = worker_->progress() != 0;
    if (auto message = worker_->probe(kPullRequestTag, UcxTag::kKindMask)) {
      serve_one(*message);
      busy = true;
    }
    if (busy) {
      idle_sleep = std::chrono::microseconds(0);
    } else {
      idle_sleep = std::min(std::chrono::microseconds(1000), idle_sleep + std::chrono::microseconds(20));
      std::this_thread::sleep_for(idle_sleep);
    }
  }
}

void TensorStore::serve_one(const ProbedMessage& message) {
  auto deadline = deadline_after(serve_timeout_);
  try {
    std::vector<std::uint8_t> bytes(message.length);
    auto receiving = worker_->receive_probed(message, bytes.data(), "pull request");
    worker_->wait(receiving, deadline);
    auto request = decode_pull_meta(bytes.data(), bytes.size(), "transport: TensorStore");
    auto& ep = worker_->endpoint(request.reply_address);
    auto reply_tag = UcxTag::make(UcxTag::kPullReply, request.request_id, 0);
    auto what = "serving " + ticket_text(request.ticket) + " to " + ep.peer();
    TensorBatch batch;
    try {
      batch = take_local(request.ticket, request.erase, "TensorStore");
    } catch (const Error& missing) {
      send_batch_error(*worker_, ep, reply_tag, request.ticket, missing.what(), deadline, what);
      return;
    }
    auto outgoing = prepare_outgoing(batch, request.ticket, worker_->supports_cuda_memory());
    send_batch(*worker_, ep, reply_tag, outgoing, deadline, what);
    ++served_;
  } catch (const std::exception& error) {
    // The consumer sees its own timeout or error; the server keeps serving others.
    log::error("troupe transport: TensorStore: ", error.what());
  }
}

}  // namespace troupe::transport
