#pragma once
// A batch over UCX: one header message (tag part 0), then one message per non-empty
// tensor (tag part i + 1), all under the same stream tag.
#include <string>

#include <ATen/ATen.h>

#include <troupe/transport/tensor_batch.hpp>
#include <troupe/transport/ucx_worker.hpp>

#include "tensor_wire.hpp"

namespace troupe::transport {

/// Sends `batch` and waits until every buffer may be reused (the receiver has taken
/// the rendezvous ones). Throws troupe::Error on timeout or peer failure.
void send_batch(UcxWorker& worker, UcxEndpoint& ep, ucp_tag_t stream_tag, const OutgoingBatch& batch,
                Clock::time_point deadline, const std::string& what);

/// Sends a header that carries only an error (no buffers follow).
void send_batch_error(UcxWorker& worker, UcxEndpoint& ep, ucp_tag_t stream_tag, std::uint64_t ticket,
                      const std::string& error, Clock::time_point deadline, const std::string& what);

/// Receives the batch sent under `stream_tag`. With `into`, the tensors land in its
/// tensors (same names, dtypes and shapes, else troupe::Error); otherwise new tensors
/// are allocated on `device`. `meta_out` gets the header when given; `peer`, when
/// given, is the sender, watched for failure while waiting.
TensorBatch receive_batch(UcxWorker& worker, ucp_tag_t stream_tag, at::Device device, TensorBatch* into,
                          Clock::time_point deadline, const std::string& what, BatchMeta* meta_out = nullptr,
                          const UcxEndpoint* peer = nullptr);

}  // namespace troupe::transport
