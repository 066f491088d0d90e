#include <troupe/transport/ucx_worker.hpp>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include <troupe/common/error.hpp>

namespace troupe::transport {
namespace {

std::string status_text(ucs_status_t status) { return ucs_status_string(status); }

void check(ucs_status_t status, const std::string& what) {
  if (status != UCS_OK) throw Error("transport: UCX " + what + " failed: " + status_text(status));
}

/// A short, stable name for an address in messages (UCX addresses are opaque bytes).
std::string address_name(const std::vector<std::uint8_t>& address) {
  std::uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (auto byte : address) hash = (hash ^ byte) * 1099511628211ull;
  char text[32];
  std::snprintf(text, sizeof text, "ucx-peer-%016llx", static_cast<unsigned long long>(hash));
  return text;
}

/// Completion callback of receives: keeps the length UCX reports.
void on_receive(void*, ucs_status_t, const ucp_tag_recv_info_t* info, void* user_data) {
  if (info != nullptr) *static_cast<ucp_tag_recv_info_t*>(user_data) = *info;
}

std::string ms_since(Clock::time_point start) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

}  // namespace

UcxRequest& UcxRequest::operator=(UcxRequest&& other) noexcept {
  if (this != &other) {
    if (request_ != nullptr) ucp_request_free(request_);
    worker_ = other.worker_;
    request_ = other.request_;
    status_ = other.status_;
    is_receive_ = other.is_receive_;
    probed_ = other.probed_;
    info_ = std::move(other.info_);
    capacity_ = other.capacity_;
    endpoint_ = other.endpoint_;
    what_ = std::move(other.what_);
    other.request_ = nullptr;
  }
  return *this;
}

UcxRequest::~UcxRequest() {
  // Only reached with a pending request when an exception unwound past it; UCX frees
  // the request once it completes (UcxWorker::wait cancels before throwing).
  if (request_ != nullptr) ucp_request_free(request_);
}

UcxWorker::UcxWorker(const UcxWorkerOptions& options) : detect_peer_failure_(options.detect_peer_failure) {
  if (const char* env = std::getenv("TROUPE_UCX_PEER_FAILURE")) detect_peer_failure_ = std::string(env) != "0";
  ucp_config_t* config = nullptr;
  check(ucp_config_read(nullptr, nullptr, &config), "config read");
  if (std::getenv("UCX_NET_DEVICES") == nullptr && options.net_devices != "all") {
    auto status = ucp_config_modify(config, "NET_DEVICES", options.net_devices.c_str());
    if (status != UCS_OK) {
      ucp_config_release(config);
      throw Error("transport: UCX rejected net_devices '" + options.net_devices + "': " + status_text(status));
    }
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_TAG;
  params.mt_workers_shared = 1;
  auto status = ucp_init(&params, config, &context_);
  ucp_config_release(config);
  check(status, "context init");

  ucp_worker_params_t worker_params{};
  worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  worker_params.thread_mode = UCS_THREAD_MODE_MULTI;
  status = ucp_worker_create(context_, &worker_params, &worker_);
  if (status != UCS_OK) {
    ucp_cleanup(context_);
    check(status, "worker create");
  }

  ucp_address_t* address = nullptr;
  std::size_t length = 0;
  status = ucp_worker_get_address(worker_, &address, &length);
  if (status != UCS_OK) {
    ucp_worker_destroy(worker_);
    ucp_cleanup(context_);
    check(status, "worker address");
  }
  auto* bytes = reinterpret_cast<const std::uint8_t*>(address);
  address_.assign(bytes, bytes + length);
  ucp_worker_release_address(worker_, address);

  ucp_context_attr_t attr{};
  attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
  if (ucp_context_query(context_, &attr) == UCS_OK) {
    cuda_memory_ = (attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;
  }
}

UcxWorker::~UcxWorker() {
  std::vector<void*> closing;
  {
    std::lock_guard<std::mutex> lock(endpoints_mutex_);
    for (auto& [address, ep] : endpoints_) {
      // Force close: a graceful close waits for the peer, which may be gone already.
      ucp_request_param_t param{};
      param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
      param.flags = UCP_EP_CLOSE_FLAG_FORCE;
      auto request = ucp_ep_close_nbx(ep->handle(), &param);
      if (UCS_PTR_IS_PTR(request)) closing.push_back(request);
    }
    endpoints_.clear();
  }
  auto deadline = Clock::now() + std::chrono::seconds(2);
  for (auto* request : closing) {
    while (ucp_request_check_status(request) == UCS_INPROGRESS && Clock::now() < deadline) progress();
    ucp_request_free(request);
  }
  ucp_worker_destroy(worker_);
  ucp_cleanup(context_);
}

void UcxWorker::mark_peer_failed(const std::vector<std::uint8_t>& remote_address) {
  std::lock_guard<std::mutex> lock(endpoints_mutex_);
  auto found = endpoints_.find(remote_address);
  if (found != endpoints_.end()) found->second->set_failure(UCS_ERR_CONNECTION_RESET);
}

void UcxWorker::on_endpoint_error(void* arg, ucp_ep_h, ucs_status_t status) {
  static_cast<UcxEndpoint*>(arg)->set_failure(status);
}

UcxEndpoint& UcxWorker::endpoint(const std::vector<std::uint8_t>& remote_address) {
  if (remote_address.empty()) throw Error("transport: empty UCX worker address");
  std::lock_guard<std::mutex> lock(endpoints_mutex_);
  auto found = endpoints_.find(remote_address);
  if (found != endpoints_.end() && found->second->failure() == UCS_OK) return *found->second;

  auto name = address_name(remote_address);
  if (found != endpoints_.end()) {
    // A failed endpoint is replaced: the peer may have restarted at the same address.
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = UCP_EP_CLOSE_FLAG_FORCE;
    auto request = ucp_ep_close_nbx(found->second->handle(), &param);
    if (UCS_PTR_IS_PTR(request)) ucp_request_free(request);
    endpoints_.erase(found);
  }
  auto holder = std::make_unique<UcxEndpoint>(nullptr, name);
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS;
  params.address = reinterpret_cast<const ucp_address_t*>(remote_address.data());
  if (detect_peer_failure_) {
    params.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = &UcxWorker::on_endpoint_error;
    params.err_handler.arg = holder.get();
  }
  ucp_ep_h ep = nullptr;
  auto status = ucp_ep_create(worker_, &params, &ep);
  if (status != UCS_OK) {
    throw Error("transport: cannot create a UCX endpoint to " + name + ": " + status_text(status) +
                " (is the address from a live troupe process?)");
  }
  holder->ep_ = ep;
  auto& result = *holder;
  endpoints_[remote_address] = std::move(holder);
  return result;
}

UcxRequest UcxWorker::send(UcxEndpoint& ep, const void* data, std::size_t size, ucp_tag_t tag,
                           ucs_memory_type_t memory, std::string what) {
  UcxRequest request;
  request.worker_ = worker_;
  request.endpoint_ = &ep;
  request.capacity_ = size;
  request.what_ = std::move(what);
  if (ep.failure() != UCS_OK) {
    request.status_ = ep.failure();
    return request;
  }
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_MEMORY_TYPE;
  param.memory_type = memory;
  auto result = ucp_tag_send_nbx(ep.handle(), data, size, tag, &param);
  if (UCS_PTR_IS_ERR(result)) {
    request.status_ = UCS_PTR_STATUS(result);
  } else if (result != nullptr) {
    request.request_ = result;
    request.status_ = UCS_INPROGRESS;
  }
  return request;
}

UcxRequest UcxWorker::receive(void* data, std::size_t size, ucp_tag_t tag, ucp_tag_t mask,
                              ucs_memory_type_t memory, std::string what, const UcxEndpoint* peer) {
  UcxRequest request;
  request.worker_ = worker_;
  request.endpoint_ = peer;
  request.is_receive_ = true;
  request.capacity_ = size;
  request.what_ = std::move(what);
  ucp_request_param_t param{};
  // Always a request and a callback: the callback is where UCX 1.13 reliably reports
  // the received length (needed to catch a message shorter than announced).
  param.op_attr_mask = UCP_OP_ATTR_FIELD_MEMORY_TYPE | UCP_OP_ATTR_FIELD_RECV_INFO | UCP_OP_ATTR_FIELD_CALLBACK |
                       UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
  param.memory_type = memory;
  param.recv_info.tag_info = request.info_.get();
  param.cb.recv = &on_receive;
  param.user_data = request.info_.get();
  auto result = ucp_tag_recv_nbx(worker_, data, size, tag, mask, &param);
  if (UCS_PTR_IS_ERR(result)) {
    request.status_ = UCS_PTR_STATUS(result);
  } else if (result != nullptr) {
    request.request_ = result;
    request.status_ = UCS_INPROGRESS;
  }
  return request;
}

std::optional<ProbedMessage> UcxWorker::probe(ucp_tag_t tag, ucp_tag_t mask) {
  ucp_tag_recv_info_t info{};
  auto message = ucp_tag_probe_nb(worker_, tag, mask, 1, &info);
  if (message == nullptr) return std::nullopt;
  return ProbedMessage{message, info.sender_tag, info.length};
}

UcxRequest UcxWorker::receive_probed(const ProbedMessage& message, void* data, std::string what) {
  UcxRequest request;
  request.worker_ = worker_;
  request.is_receive_ = true;
  request.capacity_ = message.length;
  request.probed_ = true;
  request.what_ = std::move(what);
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_RECV_INFO;
  param.recv_info.tag_info = request.info_.get();
  auto result = ucp_tag_msg_recv_nbx(worker_, data, message.length, message.handle, &param);
  if (UCS_PTR_IS_ERR(result)) {
    request.status_ = UCS_PTR_STATUS(result);
  } else if (result != nullptr) {
    request.request_ = result;
    request.status_ = UCS_INPROGRESS;
  }
  return request;
}

unsigned UcxWorker::progress() { return ucp_worker_progress(worker_); }

void UcxWorker::abandon(UcxRequest& request) {
  if (request.request_ == nullptr) return;
  ucp_request_cancel(worker_, request.request_);
  auto deadline = Clock::now() + std::chrono::seconds(1);
  while (ucp_request_check_status(request.request_) == UCS_INPROGRESS && Clock::now() < deadline) progress();
  ucp_request_free(request.request_);
  request.request_ = nullptr;
}

std::size_t UcxWorker::wait(UcxRequest& request, Clock::time_point deadline) {
  auto start = Clock::now();
  const auto& what = request.what_.empty() ? std::string("UCX transfer") : request.what_;
  if (request.request_ != nullptr) {
    while (true) {
      auto status = request.is_receive_ ? ucp_request_check_status(request.request_)
                                        : ucp_request_check_status(request.request_);
      if (status != UCS_INPROGRESS) {
        request.status_ = status;
        ucp_request_free(request.request_);
        request.request_ = nullptr;
        break;
      }
      if (request.endpoint_ != nullptr && request.endpoint_->failure() != UCS_OK) {
        abandon(request);
        throw Error("transport: peer " + request.endpoint_->peer() + " is gone (" +
                    status_text(request.endpoint_->failure()) + ") during " + what);
      }
      if (Clock::now() > deadline) {
        abandon(request);
        throw Error("transport: timed out after " + ms_since(start) + " ms waiting for " + what);
      }
      if (progress() == 0) std::this_thread::yield();
    }
  }
  if (request.status_ == UCS_ERR_MESSAGE_TRUNCATED) {
    throw Error("transport: truncated message in " + what + ": the sender sent more than the " +
                std::to_string(request.capacity_) + " bytes expected");
  }
  if (request.status_ != UCS_OK) {
    auto peer = request.endpoint_ != nullptr ? " to " + request.endpoint_->peer() : std::string();
    throw Error("transport: " + what + peer + " failed: " + status_text(request.status_));
  }
  if (request.probed_) request.info_->length = request.capacity_;
  if (request.is_receive_ && request.info_->length != request.capacity_) {
    throw Error("transport: truncated message in " + what + ": received " + std::to_string(request.info_->length) +
                " of " + std::to_string(request.capacity_) + " bytes");
  }
  return request.is_receive_ ? request.info_->length : request.capacity_;
}

void UcxWorker::wait_all(std::vector<UcxRequest>& requests, Clock::time_point deadline) {
  std::optional<Error> first;
  for (auto& request : requests) {
    if (first) {
      abandon(request);  // after a failure the rest is cancelled, never left pointing at freed buffers
      continue;
    }
    try {
      wait(request, deadline);
    } catch (const Error& error) {
      first = error;
    }
  }
  if (first) throw *first;
}

std::vector<std::uint8_t> UcxWorker::receive_message(ucp_tag_t tag, ucp_tag_t mask, Clock::time_point deadline,
                                                     const std::string& what, const UcxEndpoint* peer) {
  auto start = Clock::now();
  while (true) {
    if (auto message = probe(tag, mask)) {
      std::vector<std::uint8_t> bytes(message->length);
      auto request = receive_probed(*message, bytes.data(), what);
      wait(request, deadline);
      return bytes;
    }
    if (peer != nullptr && peer->failure() != UCS_OK) {
      throw Error("transport: peer " + peer->peer() + " is gone (" + status_text(peer->failure()) +
                  ") while waiting for " + what);
    }
    if (Clock::now() > deadline) {
      throw Error("transport: timed out after " + ms_since(start) + " ms waiting for " + what);
    }
    if (progress() == 0) std::this_thread::yield();
  }
}

}  // namespace troupe::transport
