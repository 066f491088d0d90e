#pragma once
// Between tensors and wire metadata: dtype mapping, contiguous send buffers, allocation.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <troupe/transport/tensor_batch.hpp>
#include <troupe/transport/wire_header.hpp>

namespace troupe::transport {

/// Throws troupe::Error for dtypes the wire does not carry (complex, quantized, ...).
WireDType to_wire_dtype(at::ScalarType type, const std::string& tensor_name);
at::ScalarType to_scalar_type(WireDType dtype);

/// A batch ready to send: its header and one contiguous buffer per tensor, in header order.
struct OutgoingBatch {
  BatchMeta meta;
  std::vector<at::Tensor> buffers;  // contiguous; on the host unless device memory is allowed
};

/// Makes every tensor contiguous and, unless `device_memory` (UCX can read device
/// memory), copies device tensors to the host.
OutgoingBatch prepare_outgoing(const TensorBatch& batch, std::uint64_t ticket, bool device_memory);

/// Allocates an empty tensor for `meta` on `device` (uninitialised contents).
at::Tensor allocate_for(const TensorMeta& meta, at::Device device);

/// Checks that `meta` describes `tensor` (dtype and shape); `where` names the transfer.
void check_matches(const TensorMeta& meta, const at::Tensor& tensor, const std::string& where);

}  // namespace troupe::transport
