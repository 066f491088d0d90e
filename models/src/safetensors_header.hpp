#pragma once
/// The header of a `.safetensors` file, parsed and checked without LibTorch: an 8-byte
/// little-endian length N, N bytes of JSON header (`{name: {dtype, shape, data_offsets},
/// "__metadata__": {str: str}}`), then the data section the offsets point into.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::models::safetensors {

/// A dtype name of the format and the bytes of one element.
struct Dtype {
  std::string_view name;
  int64_t size;
};

/// The dtypes troupe reads and writes, in the format's names.
inline constexpr Dtype kDtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
    {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1},
};

/// One tensor as the header describes it, checked against the data section.
struct HeaderEntry {
  std::string name;
  Dtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  ///< offsets into the data section: [begin, end)
  uint64_t end = 0;
};

struct Header {
  /// Sorted by data offsets; no two that own bytes overlap.
  std::vector<HeaderEntry> entries;
  uint64_t data_offset = 0;  ///< where the data section starts in the file (8 + N)
  uint64_t data_size = 0;
};

/// Parses the header of the file whose bytes are [bytes, bytes + size). Trusts nothing:
/// every length and offset is checked against `size` before it is returned. Throws
/// troupe::Error naming `file` and the problem (header length, JSON, dtype, shape,
/// offsets) for a truncated or corrupt file.
Header parse_header(const uint8_t* bytes, uint64_t size, const std::string& file);

}  // namespace troupe::models::safetensors
