// Encodes and decodes the wire messages with the generated protobuf-lite code.
// This unit must not include torch headers (see wire_header.hpp).
#include <troupe/transport/wire_header.hpp>

#include <limits>

#include <troupe/common/error.hpp>

#include "tensor_batch.pb.h"

namespace troupe::transport {
namespace {

namespace pb = troupe::transport::wire;

bool known_dtype(int value) { return value >= 1 && value <= 10; }

/// numel * element size, or an error when it overflows 64 bits.
std::uint64_t expected_nbytes(const TensorMeta& t, const std::string& where) {
  std::uint64_t count = 1;
  for (auto dim : t.shape) {
    if (dim < 0) {
      throw Error(where + ": tensor '" + t.name + "' has a negative dimension " + std::to_string(dim));
    }
    auto d = static_cast<std::uint64_t>(dim);
    if (d != 0 && count > std::numeric_limits<std::uint64_t>::max() / d) {
      throw Error(where + ": tensor '" + t.name + "' shape overflows 64 bits");
    }
    count *= d;
  }
  auto size = wire_dtype_size(t.dtype);
  if (count > std::numeric_limits<std::uint64_t>::max() / size) {
    throw Error(where + ": tensor '" + t.name + "' byte size overflows 64 bits");
  }
  return count * size;
}

}  // namespace

std::size_t wire_dtype_size(WireDType dtype) {
  switch (dtype) {
    case WireDType::kFloat64:
    case WireDType::kInt64: return 8;
    case WireDType::kFloat32:
    case WireDType::kInt32: return 4;
    case WireDType::kFloat16:
    case WireDType::kBFloat16:
    case WireDType::kInt16: return 2;
    case WireDType::kInt8:
    case WireDType::kUInt8:
    case WireDType::kBool: return 1;
    case WireDType::kUnspecified: break;
  }
  throw Error("transport: wire dtype " + std::to_string(static_cast<int>(dtype)) + " has no element size");
}

std::string wire_dtype_name(WireDType dtype) {
  switch (dtype) {
    case WireDType::kFloat32: return "float32";
    case WireDType::kFloat64: return "float64";
    case WireDType::kFloat16: return "float16";
    case WireDType::kBFloat16: return "bfloat16";
    case WireDType::kInt8: return "int8";
    case WireDType::kInt16: return "int16";
    case WireDType::kInt32: return "int32";
    case WireDType::kInt64: return "int64";
    case WireDType::kUInt8: return "uint8";
    case WireDType::kBool: return "bool";
    case WireDType::kUnspecified: break;
  }
  return "unspecified(" + std::to_string(static_cast<int>(dtype)) + ")";
}

std::vector<std::uint8_t> encode_batch_meta(const BatchMeta& meta) {
  pb::BatchHeader header;
  header.set_ticket(meta.ticket);
  header.set_error(meta.error);
  for (const auto& t : meta.tensors) {
    auto* out = header.add_tensors();
    out->set_name(t.name);
    out->set_dtype(static_cast<pb::DType>(t.dtype));
    for (auto dim : t.shape) out->add_shape(dim);
    out->set_nbytes(t.nbytes);
    out->set_device(t.device);
  }
  std::vector<std::uint8_t> bytes(header.ByteSizeLong());
  if (!header.SerializeToArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw Error("transport: could not serialise the batch header of ticket " + std::to_string(meta.ticket));
  }
  return bytes;
}

BatchMeta decode_batch_meta(const std::uint8_t* data, std::size_t size, const std::string& where) {
  pb::BatchHeader header;
  if (size > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      !header.ParseFromArray(data, static_cast<int>(size))) {
    throw Error(where + ": malformed batch header (" + std::to_string(size) + " bytes)");
  }
  BatchMeta meta;
  meta.ticket = header.ticket();
  meta.error = header.error();
  meta.tensors.reserve(header.tensors_size());
  for (const auto& in : header.tensors()) {
    TensorMeta t;
    t.name = in.name();
    if (!known_dtype(in.dtype())) {
      throw Error(where + ": tensor '" + t.name + "' has unknown dtype " + std::to_string(in.dtype()));
    }
    t.dtype = static_cast<WireDType>(in.dtype());
    t.shape.assign(in.shape().begin(), in.shape().end());
    t.nbytes = in.nbytes();
    t.device = in.device();
    auto expected = expected_nbytes(t, where);
    if (expected != t.nbytes) {
      throw Error(where + ": tensor '" + t.name + "' (" + wire_dtype_name(t.dtype) + ") claims " +
                  std::to_string(t.nbytes) + " bytes but its shape needs " + std::to_string(expected));
    }
    meta.tensors.push_back(std::move(t));
  }
  return meta;
}

std::vector<std::uint8_t> encode_pull_meta(const PullMeta& meta) {
  pb::PullRequest request;
  request.set_ticket(meta.ticket);
  request.set_request_id(meta.request_id);
  request.set_reply_address(meta.reply_address.data(), meta.reply_address.size());
  request.set_erase(meta.erase);
  std::vector<std::uint8_t> bytes(request.ByteSizeLong());
  if (!request.SerializeToArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw Error("transport: could not serialise the pull request for ticket " + std::to_string(meta.ticket));
  }
  return bytes;
}

PullMeta decode_pull_meta(const std::uint8_t* data, std::size_t size, const std::string& where) {
  pb::PullRequest request;
  if (size > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      !request.ParseFromArray(data, static_cast<int>(size))) {
    throw Error(where + ": malformed pull request (" + std::to_string(size) + " bytes)");
  }
  PullMeta meta;
  meta.ticket = request.ticket();
  meta.request_id = request.request_id();
  meta.reply_address.assign(request.reply_address().begin(), request.reply_address().end());
  meta.erase = request.erase();
  if (meta.reply_address.empty()) throw Error(where + ": pull request without a reply address");
  return meta;
}

}  // namespace troupe::transport
