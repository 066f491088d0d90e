#pragma once
/// One UCX context and worker per process: addresses, endpoints, tagged messages.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <ucp/api/ucp.h>

namespace troupe::transport {

using Clock = std::chrono::steady_clock;

/// A connection to a remote worker. Owned by its UcxWorker; closed with it.
class UcxEndpoint {
 public:
  UcxEndpoint(ucp_ep_h ep, std::string peer) : ep_(ep), peer_(std::move(peer)) {}
  ucp_ep_h handle() const { return ep_; }
  /// Short printable name of the peer address, for messages.
  const std::string& peer() const { return peer_; }
  /// UCS_OK, or the error UCX reported for this endpoint (peer gone, reset, ...).
  ucs_status_t failure() const { return failure_.load(); }
  void set_failure(ucs_status_t status) { failure_.store(status); }

 private:
  friend class UcxWorker;
  ucp_ep_h ep_;
  std::string peer_;
  std::atomic<ucs_status_t> failure_{UCS_OK};
};

/// One outstanding send or receive. Move-only; waits through UcxWorker::wait.
class UcxRequest {
 public:
  UcxRequest() = default;
  UcxRequest(UcxRequest&& other) noexcept { *this = std::move(other); }
  UcxRequest& operator=(UcxRequest&& other) noexcept;
  UcxRequest(const UcxRequest&) = delete;
  UcxRequest& operator=(const UcxRequest&) = delete;
  ~UcxRequest();

 private:
  friend class UcxWorker;
  ucp_worker_h worker_ = nullptr;
  void* request_ = nullptr;          // null: completed at once (or failed at once)
  ucs_status_t status_ = UCS_OK;     // final status once done
  bool is_receive_ = false;
  bool probed_ = false;              // length known from the probe (UCX does not report it again)
  // Receives: tag and length of the message; on the heap so UCX's callback can fill it
  // after the request handle moved.
  std::unique_ptr<ucp_tag_recv_info_t> info_ = std::make_unique<ucp_tag_recv_info_t>();
  std::size_t capacity_ = 0;         // receives: bytes of the buffer posted
  const UcxEndpoint* endpoint_ = nullptr;  // checked for peer failure while waiting
  std::string what_;
};

/// Bits of a 64-bit UCX tag: kind (4) | stream (40) | part (20).
struct UcxTag {
  enum Kind : std::uint64_t { kPullRequest = 1, kPullReply = 2, kChannel = 3, kCollective = 4 };
  static constexpr int kPartBits = 20;
  static constexpr int kStreamBits = 40;
  static constexpr std::uint64_t kPartMask = (std::uint64_t{1} << kPartBits) - 1;
  static constexpr std::uint64_t kStreamMask = (std::uint64_t{1} << kStreamBits) - 1;
  /// Mask that matches kind and stream and ignores the part.
  static constexpr ucp_tag_t kStreamTagMask = ~kPartMask;
  /// Mask that matches the kind only.
  static constexpr ucp_tag_t kKindMask = std::uint64_t{0xF} << 60;

  static ucp_tag_t make(Kind kind, std::uint64_t stream, std::uint64_t part) {
    return (static_cast<std::uint64_t>(kind) << 60) | ((stream & kStreamMask) << kPartBits) |
           (part & kPartMask);
  }
};

/// A message seen by probe but not yet received.
struct ProbedMessage {
  ucp_tag_message_h handle = nullptr;
  ucp_tag_t tag = 0;
  std::size_t length = 0;
};

/// How a UcxWorker reaches other processes.
struct UcxWorkerOptions {
  /// UCX network devices to use (UCX_NET_DEVICES); loopback by default so nothing is
  /// reachable from outside the machine. "all" lets UCX use every interface. An
  /// UCX_NET_DEVICES environment variable wins over this.
  std::string net_devices = "lo";
  /// Ask UCX to report a dead peer on the endpoint (UCP_ERR_HANDLING_MODE_PEER), so a
  /// wait on it fails at once. Off by default: UCX 1.13 then uses only transports that
  /// can detect failure (TCP), not shared memory or CMA between processes of one
  /// machine, which cuts bandwidth 1.5-3x (bench/transport_bench). Without it a dead
  /// peer shows as a timeout, and the actor layer reports a lost process within
  /// seconds anyway. TROUPE_UCX_PEER_FAILURE=0|1 overrides.
  bool detect_peer_failure = false;
};

/// The process's UCX context and worker (thread mode MULTI: the TensorStore's
/// server thread and callers' threads may progress it at the same time).
class UcxWorker {
 public:
  explicit UcxWorker(const UcxWorkerOptions& options = {});
  ~UcxWorker();
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;

  /// This worker's address: opaque bytes another process passes to endpoint().
  const std::vector<std::uint8_t>& address() const { return address_; }
  /// Whether UCX here can send and receive CUDA device memory directly.
  bool supports_cuda_memory() const { return cuda_memory_; }

  /// The endpoint to a remote worker, created on first use and cached.
  UcxEndpoint& endpoint(const std::vector<std::uint8_t>& remote_address);

  /// Starts a tagged send of `size` bytes (UCX picks eager or rendezvous).
  UcxRequest send(UcxEndpoint& ep, const void* data, std::size_t size, ucp_tag_t tag,
                  ucs_memory_type_t memory = UCS_MEMORY_TYPE_HOST, std::string what = {});
  /// Posts a tagged receive of exactly `size` bytes; `peer`, when given, is watched
  /// for failure while waiting.
  UcxRequest receive(void* data, std::size_t size, ucp_tag_t tag, ucp_tag_t mask,
                     ucs_memory_type_t memory = UCS_MEMORY_TYPE_HOST, std::string what = {},
                     const UcxEndpoint* peer = nullptr);
  /// Removes and returns a matching message that has arrived (or announced itself), if any.
  std::optional<ProbedMessage> probe(ucp_tag_t tag, ucp_tag_t mask);
  /// Receives a probed message into `data` (at least message.length bytes).
  UcxRequest receive_probed(const ProbedMessage& message, void* data, std::string what = {});

  /// Progresses until the request completes; throws troupe::Error on failure,
  /// peer failure, truncation or when `deadline` passes (the request is cancelled).
  /// Returns the received length for receives, the sent size otherwise.
  std::size_t wait(UcxRequest& request, Clock::time_point deadline);
  /// Waits for all; the first error is thrown after every request is settled.
  void wait_all(std::vector<UcxRequest>& requests, Clock::time_point deadline);
  /// Waits for a whole message matching tag/mask of unknown length and returns its bytes.
  /// `peer`, when given, is watched for failure while waiting.
  std::vector<std::uint8_t> receive_message(ucp_tag_t tag, ucp_tag_t mask, Clock::time_point deadline,
                                            const std::string& what, const UcxEndpoint* peer = nullptr);

  /// Marks the endpoint to `remote_address` (if any) as failed, so every wait on it
  /// ends at once with "peer ... is gone": for peers another layer knows are dead.
  void mark_peer_failed(const std::vector<std::uint8_t>& remote_address);
  /// One round of progress; returns the number of events processed.
  unsigned progress();
  ucp_worker_h handle() const { return worker_; }

 private:
  static void on_endpoint_error(void* arg, ucp_ep_h ep, ucs_status_t status);
  /// Cancels a pending request and waits (bounded) until UCX lets go of its buffer.
  void abandon(UcxRequest& request);

  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  std::vector<std::uint8_t> address_;
  bool cuda_memory_ = false;
  bool detect_peer_failure_ = false;
  std::mutex endpoints_mutex_;
  std::map<std::vector<std::uint8_t>, std::unique_ptr<UcxEndpoint>> endpoints_;
};

/// "timeout" helper: now + milliseconds.
inline Clock::time_point deadline_after(std::chrono::milliseconds timeout) { return Clock::now() + timeout; }

}  // namespace troupe::transport
