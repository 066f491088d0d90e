#include "tensor_wire.hpp"

#include <troupe/common/error.hpp>

namespace troupe::transport {
namespace {

std::string shape_text(at::IntArrayRef shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

}  // namespace

WireDType to_wire_dtype(at::ScalarType type, const std::string& tensor_name) {
  switch (type) {
    case at::kFloat: return WireDType::kFloat32;
    case at::kDouble: return WireDType::kFloat64;
    case at::kHalf: return WireDType::kFloat16;
    case at::kBFloat16: return WireDType::kBFloat16;
    case at::kChar: return WireDType::kInt8;
    case at::kShort: return WireDType::kInt16;
    case at::kInt: return WireDType::kInt32;
    case at::kLong: return WireDType::kInt64;
    case at::kByte: return WireDType::kUInt8;
    case at::kBool: return WireDType::kBool;
    default: break;
  }
  throw Error("transport: tensor '" + tensor_name + "' has dtype " + std::string(c10::toString(type)) +
              ", which the wire does not carry");
}

at::ScalarType to_scalar_type(WireDType dtype) {
  switch (dtype) {
    case WireDType::kFloat32: return at::kFloat;
    case WireDType::kFloat64: return at::kDouble;
    case WireDType::kFloat16: return at::kHalf;
    case WireDType::kBFloat16: return at::kBFloat16;
    case WireDType::kInt8: return at::kChar;
    case WireDType::kInt16: return at::kShort;
    case WireDType::kInt32: return at::kInt;
    case WireDType::kInt64: return at::kLong;
    case WireDType::kUInt8: return at::kByte;
    case WireDType::kBool: return at::kBool;
    case WireDType::kUnspecified: break;
  }
  throw Error("transport: wire dtype " + wire_dtype_name(dtype) + " has no torch dtype");
}

OutgoingBatch prepare_outgoing(const TensorBatch& batch, std::uint64_t ticket, bool device_memory) {
  OutgoingBatch out;
  out.meta.ticket = ticket;
  out.meta.tensors.reserve(batch.size());
  out.buffers.reserve(batch.size());
  for (const auto& [name, tensor] : batch) {
    TensorMeta meta;
    meta.name = name;
    meta.dtype = to_wire_dtype(tensor.scalar_type(), name);
    meta.shape = tensor.sizes().vec();
    meta.device = tensor.device().str();
    auto buffer = tensor;
    if (!buffer.device().is_cpu() && !(device_memory && buffer.device().is_cuda())) {
      buffer = buffer.to(at::kCPU);  // staged through host memory
    }
    buffer = buffer.contiguous();
    meta.nbytes = static_cast<std::uint64_t>(buffer.numel()) * buffer.element_size();
    out.meta.tensors.push_back(std::move(meta));
    out.buffers.push_back(std::move(buffer));
  }
  return out;
}

at::Tensor allocate_for(const TensorMeta& meta, at::Device device) {
  return at::empty(meta.shape, at::TensorOptions().dtype(to_scalar_type(meta.dtype)).device(device));
}

void check_matches(const TensorMeta& meta, const at::Tensor& tensor, const std::string& where) {
  auto dtype = to_scalar_type(meta.dtype);
  if (tensor.scalar_type() != dtype || tensor.sizes() != at::IntArrayRef(meta.shape)) {
    throw Error(where + ": tensor '" + meta.name + "' arrives as " + wire_dtype_name(meta.dtype) +
                shape_text(meta.shape) + " but the destination is " + std::string(c10::toString(tensor.scalar_type())) +
                shape_text(tensor.sizes()));
  }
}

}  // namespace troupe::transport
