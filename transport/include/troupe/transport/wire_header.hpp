#pragma once
/// Plain C++ mirror of the wire messages in transport/proto/tensor_batch.proto.
///
/// Torch-free on purpose: the generated protobuf code is compiled in a unit that
/// never sees the torch include path (the wheel ships protobuf 3.13 headers there,
/// Debian's runtime is 3.21), so the rest of transport/ speaks these structs.
#include <cstdint>
#include <string>
#include <vector>

namespace troupe::transport {

/// Element types that cross the wire (values match the proto enum).
enum class WireDType : int {
  kUnspecified = 0,
  kFloat32 = 1,
  kFloat64 = 2,
  kFloat16 = 3,
  kBFloat16 = 4,
  kInt8 = 5,
  kInt16 = 6,
  kInt32 = 7,
  kInt64 = 8,
  kUInt8 = 9,
  kBool = 10,
};

/// Bytes per element of a wire dtype; throws troupe::Error for kUnspecified.
std::size_t wire_dtype_size(WireDType dtype);
/// "float32", "bfloat16", ... for messages.
std::string wire_dtype_name(WireDType dtype);

/// Metadata of one tensor: its raw buffer travels separately.
struct TensorMeta {
  std::string name;
  WireDType dtype = WireDType::kUnspecified;
  std::vector<std::int64_t> shape;
  std::uint64_t nbytes = 0;
  std::string device = "cpu";
};

/// The header that precedes a batch's buffers.
struct BatchMeta {
  std::uint64_t ticket = 0;
  std::vector<TensorMeta> tensors;
  std::string error;  ///< non-empty: the sender could not serve the batch; no buffers follow
};

/// A pull request from a consumer to a producer's TensorStore.
struct PullMeta {
  std::uint64_t ticket = 0;
  std::uint64_t request_id = 0;
  std::vector<std::uint8_t> reply_address;
  bool erase = false;
};

std::vector<std::uint8_t> encode_batch_meta(const BatchMeta& meta);
/// Parses and validates (known dtype, non-negative dims, nbytes == numel * element size).
/// `where` names the source in error messages.
BatchMeta decode_batch_meta(const std::uint8_t* data, std::size_t size, const std::string& where);

std::vector<std::uint8_t> encode_pull_meta(const PullMeta& meta);
PullMeta decode_pull_meta(const std::uint8_t* data, std::size_t size, const std::string& where);

}  // namespace troupe::transport
