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

namespace {

/// Whether UCX can write straight into `tensor`.
bool writable_in_place(const at::Tensor& tensor, const UcxWorker& worker) {
  return tensor.is_contiguous() && (tensor.device().is_cpu() || (tensor.device().is_cuda() && worker.supports_cuda_memory()));
}

/// For a receive into a known destination: posts the receives of its tensors before the
/// header arrives, so the sender's data meets a posted receive instead of waiting for
/// the header to be read (one round trip less per batch). Empty when some tensor
/// cannot be written in place; the header path then posts them.
std::vector<UcxRequest> post_receives_early(UcxWorker& worker, ucp_tag_t stream_tag, const TensorBatch& into,
                                            const std::string& what, const UcxEndpoint* peer) {
  std::vector<UcxRequest> requests;
  for (const auto& [name, tensor] : into)
    if (!writable_in_place(tensor, worker)) return requests;
  std::size_t i = 0;
  for (const auto& [name, tensor] : into) {
    ++i;
    const auto nbytes = static_cast<std::size_t>(tensor.numel()) * tensor.element_size();
    if (nbytes == 0) continue;
    requests.push_back(worker.receive(tensor.data_ptr(), nbytes, stream_tag | i, ~ucp_tag_t{0},
                                      memory_type_of(tensor), what + " (tensor '" + name + "')", peer));
  }
  return requests;
}

/// Cancels and settles posted receives so none points at memory about to be reused.
void abandon_all(UcxWorker& worker, std::vector<UcxRequest>& requests) {
  try {
    worker.wait_all(requests, Clock::now());
  } catch (const Error&) {
  }
}

}  // namespace

TensorBatch receive_batch(UcxWorker& worker, ucp_tag_t stream_tag, at::Device device, TensorBatch* into,
                          Clock::time_point deadline, const std::string& what, BatchMeta* meta_out,
                          const UcxEndpoint* peer) {
  std::vector<UcxRequest> early;
  if (into != nullptr && into->size() < UcxTag::kPartMask) early = post_receives_early(worker, stream_tag, *into, what, peer);
  BatchMeta meta;
  try {
    auto bytes = worker.receive_message(stream_tag, ~ucp_tag_t{0}, deadline, what + " (header)", peer);
    meta = decode_batch_meta(bytes.data(), bytes.size(), what);
    if (!meta.error.empty()) throw Error(what + ": the sender reports: " + meta.error);
    if (meta.tensors.size() >= UcxTag::kPartMask) {
      throw Error(what + ": " + std::to_string(meta.tensors.size()) + " tensors exceed the wire's limit");
    }
    if (into != nullptr && into->size() != meta.tensors.size()) {
      throw Error(what + ": " + std::to_string(meta.tensors.size()) + " tensors arrive but the destination holds " +
                  std::to_string(into->size()));
    }
    if (!early.empty()) {
      // The early receives were posted in the destination's name order: the wire's must match.
      auto expected = into->begin();
      for (const auto& t : meta.tensors) {
        if (t.name != expected->first)
          throw Error(what + ": tensor '" + t.name + "' arrives where the destination has '" + expected->first + "'");
        check_matches(t, expected->second, what);
        ++expected;
      }
    }
  } catch (...) {
    abandon_all(worker, early);
    throw;
  }
  if (!early.empty()) {
    worker.wait_all(early, deadline);
    if (meta_out != nullptr) *meta_out = std::move(meta);
    return *into;
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
        landing[i] = writable_in_place(destination[i], worker) ? destination[i] : allocate_for(t, at::kCPU);
      } else {
        landing[i] = allocate_for(t, device_direct || device.is_cpu() ? device : at::Device(at::kCPU));
      }
      if (t.nbytes == 0) continue;
      requests.push_back(worker.receive(landing[i].data_ptr(), t.nbytes, stream_tag | (i + 1), ~ucp_tag_t{0},
                                        memory_type_of(landing[i]), what + " (tensor '" + t.name + "')", peer));
    }
  } catch (...) {
    abandon_all(worker, requests);  // never leave receives pointing at tensors about to be freed
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
