#include "batch_io.hpp"

#include <troupe/common/error.hpp>

namespace troupe::transport {
namespace {

ucs_memory_type_t memory_type_of(const at::Tensor& tensor) {
  return tensor.device().is_cuda() ? UCS_MEMORY_TYPE_CUDA : UCS_MEMORY_TYPE_HOST;
}

}  // namespace

void send_batch(UcxWorker& worker, UcxEndpoint& ep, ucp_tag_t stream_tag, const OutgoingBatch& batch,
                Clock::time_point deadline, const std::string& what) {
  auto header = encode_batch_meta(batch.meta);
  std::vector<UcxRequest> requests;
  requests.reserve(batch.buffers.size() + 1);
  requests.push_back(worker.send(ep, header.data(), header.size(), stream_tag, UCS_MEMORY_TYPE_HOST,
                                 what + " (header)"));
  for (std::size_t i = 0; i < batch.buffers.size(); ++i) {
    const auto& meta = batch.meta.tensors[i];
    if (meta.nbytes == 0) continue;  // empty tensors travel in the header only
    const auto& buffer = batch.buffers[i];
    requests.push_back(worker.send(ep, buffer.data_ptr(), meta.nbytes, stream_tag | (i + 1), memory_type_of(buffer),
                                   what + " (tensor '" + meta.name + "')"));
  }
  worker.wait_all(requests, deadline);
}

void send_batch_error(UcxWorker& worker, UcxEndpoint& ep, ucp_tag_t stream_tag, std::uint64_t ticket,
                      const std::string& error, Clock::time_point deadline, const std::string& what) {
  BatchMeta meta;
  meta.ticket = ticket;
  meta.error = error;
  auto header = encode_batch_meta(meta);
  auto request = worker.send(ep, header.data(), header.size(), stream_tag, UCS_MEMORY_TYPE_HOST, what + " (error)");
  worker.wait(request, deadline);
}

TensorBatch receive_batch(UcxWorker& worker, ucp_tag_t stream_tag, at::Device device, TensorBatch* into,
                          Clock::time_point deadline, const std::string& what, BatchMeta* meta_out,
                          const UcxEndpoint* peer) {
  auto bytes = worker.receive_message(stream_tag, ~ucp_tag_t{0}, deadline, what + " (header)", peer);
  auto meta = decode_batch_meta(bytes.data(), bytes.size(), what);
  if (!meta.error.empty()) throw Error(what + ": the sender reports: " + meta.error);
  if (meta.tensors.size() >= UcxTag::kPartMask) {
    throw Error(what + ": " + std::to_string(meta.tensors.size()) + " tensors exceed the wire's limit");
  }
  if (into != nullptr && into->size() != meta.tensors.size()) {
    throw Error(what + ": " + std::to_string(meta.tensors.size()) + " tensors arrive but the destination holds " +
                std::to_string(into->size()));
  }

  bool device_direct = device.is_cuda() && worker.supports_cuda_memory();
  TensorBatch result;
  std::vector<at::Tensor> landing(meta.tensors.size());     // where UCX writes
  std::vector<at::Tensor> destination(meta.tensors.size());  // what the caller gets
  std::vector<UcxRequest> requests;
  try {
    for (std::size_t i = 0; i < meta.tensors.size(); ++i) {
      const auto& t = meta.tensors[i];
      if (into != nullptr) {
        destination[i] = into->get(t.name);
        check_matches(t, destination[i], what);
        bool writable = destination[i].is_contiguous() &&
                        (destination[i].device().is_cpu() || (destination[i].device().is_cuda() && worker.supports_cuda_memory()));
        landing[i] = writable ? destination[i] : allocate_for(t, at::kCPU);
      } else {
        landing[i] = allocate_for(t, device_direct || device.is_cpu() ? device : at::Device(at::kCPU));
      }
      if (t.nbytes == 0) continue;
      requests.push_back(worker.receive(landing[i].data_ptr(), t.nbytes, stream_tag | (i + 1), ~ucp_tag_t{0},
                                        memory_type_of(landing[i]), what + " (tensor '" + t.name + "')", peer));
    }
  } catch (...) {
    // Never leave posted receives pointing at tensors about to be freed.
    try {
      worker.wait_all(requests, Clock::now());
    } catch (const Error&) {
    }
    throw;
  }
  worker.wait_all(requests, deadline);

  for (std::size_t i = 0; i < meta.tensors.size(); ++i) {
    const auto& name = meta.tensors[i].name;
    if (into != nullptr) {
      if (!landing[i].is_same(destination[i])) destination[i].copy_(landing[i]);
      continue;
    }
    result.insert(name, landing[i].device() == device ? landing[i] : landing[i].to(device));
  }
  if (meta_out != nullptr) *meta_out = std::move(meta);
  return into != nullptr ? *into : result;
}

}  // namespace troupe::transport
