#include <troupe/transport/ucx_channel.hpp>

#include <troupe/common/error.hpp>

#include "batch_io.hpp"

namespace troupe::transport {
namespace {
constexpr int kSequenceBits = 24;
}  // namespace

UcxChannel::UcxChannel(std::shared_ptr<UcxWorker> worker, std::vector<std::uint8_t> peer_address,
                       std::uint16_t channel_id, TransferOptions options)
    : worker_(std::move(worker)), peer_address_(std::move(peer_address)), channel_id_(channel_id), options_(options) {
  if (!worker_) throw Error("transport: UcxChannel needs a UcxWorker");
  if (peer_address_.empty()) throw Error("transport: UcxChannel " + std::to_string(channel_id) + ": empty peer address");
}

ucp_tag_t UcxChannel::stream_tag(std::uint64_t sequence) const {
  // The sequence wraps after 2^24 batches; tags then repeat, which is harmless because
  // UCX matches messages of one tag in order.
  auto stream = (std::uint64_t{channel_id_} << kSequenceBits) | (sequence & ((1u << kSequenceBits) - 1));
  return UcxTag::make(UcxTag::kChannel, stream, 0);
}

void UcxChannel::send(const TensorBatch& batch) {
  auto outgoing = prepare_outgoing(batch, sent_, worker_->supports_cuda_memory());
  auto& ep = worker_->endpoint(peer_address_);
  send_batch(*worker_, ep, stream_tag(sent_), outgoing, deadline_after(options_.timeout),
             "channel " + std::to_string(channel_id_) + " send #" + std::to_string(sent_) + " to " + ep.peer());
  ++sent_;
}

TensorBatch UcxChannel::receive() {
  auto batch = receive_batch(*worker_, stream_tag(received_), options_.device, nullptr, deadline_after(options_.timeout),
                             "channel " + std::to_string(channel_id_) + " receive #" + std::to_string(received_));
  ++received_;
  return batch;
}

void UcxChannel::receive_into(TensorBatch& destination) {
  receive_batch(*worker_, stream_tag(received_), options_.device, &destination, deadline_after(options_.timeout),
                "channel " + std::to_string(channel_id_) + " receive #" + std::to_string(received_));
  ++received_;
}

}  // namespace troupe::transport
