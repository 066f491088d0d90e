#pragma once
/// A channel to another process over UCX: protobuf header, then the raw buffers.
#include <cstdint>
#include <memory>
#include <vector>

#include <troupe/transport/tensor_channel.hpp>
#include <troupe/transport/ucx_worker.hpp>

namespace troupe::transport {

/// One direction of traffic between two workers is identified by `channel_id`: both
/// processes construct a UcxChannel with the same id, each with the other's address.
/// Batches are numbered, so they are received in the order they were sent.
class UcxChannel final : public TensorChannel {
 public:
  UcxChannel(std::shared_ptr<UcxWorker> worker, std::vector<std::uint8_t> peer_address, std::uint16_t channel_id,
             TransferOptions options = {});

  void send(const TensorBatch& batch) override;
  TensorBatch receive() override;
  void receive_into(TensorBatch& destination) override;

 private:
  ucp_tag_t stream_tag(std::uint64_t sequence) const;

  std::shared_ptr<UcxWorker> worker_;
  std::vector<std::uint8_t> peer_address_;
  std::uint16_t channel_id_;
  TransferOptions options_;
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
};

}  // namespace troupe::transport
