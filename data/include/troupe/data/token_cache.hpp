#pragma once
/// The tokenized cache file and `PhaseDataset`, its memory-mapped reader.
///
/// Layout (little-endian, every section 8-byte aligned):
///   char     magic[8]      "TRPDATA\0"
///   uint32   version       kCacheFormatVersion
///   uint32   field_mask    bit f set: Field f is stored
///   uint64   key_bytes,  key  (the cache key, JSON text), zero-padded
///   uint64   info_bytes, info (stats and per-dataset reports, JSON text), zero-padded
///   int64    n             samples
///   per stored field, in Field order:
///     int64  offsets[n + 1]          sample i is tokens[offsets[i], offsets[i+1])
///     int32  tokens[offsets[n]], zero-padded
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <troupe/data/tokenize.hpp>

namespace troupe::data {

inline constexpr uint32_t kCacheFormatVersion = 1;

/// A view of one sample's tokens inside the mapped file (or any int32 array).
struct TokenSpan {
  const int32_t* data = nullptr;
  int64_t size = 0;
  const int32_t* begin() const { return data; }
  const int32_t* end() const { return data + size; }
};

/// Writes `phase` to `path` through a temporary file renamed into place.
void write_token_cache(const std::filesystem::path& path, const std::string& key, const std::string& info,
                       const TokenizedPhase& phase);

/// A tokenized phase split (train or eval) read by memory map: cheap to open and to
/// copy (copies share the mapping), safe to read from several threads.
class PhaseDataset {
 public:
  PhaseDataset() = default;
  /// Maps `path`; throws troupe::Error naming it when it is not a valid cache file,
  /// or when `expected_key` is non-empty and differs from the stored key.
  static PhaseDataset open(const std::filesystem::path& path, const std::string& expected_key = "");

  int64_t size() const { return n_; }
  bool has(Field f) const { return fields_[static_cast<int>(f)].offsets != nullptr; }
  /// Sample `i`'s tokens of field `f`; throws when the field is not stored or i is out of range.
  TokenSpan get(Field f, int64_t i) const;
  const std::string& key() const { return key_; }
  /// JSON text written with the cache (stats, per-dataset reports).
  const std::string& info() const { return info_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  struct FieldView {
    const int64_t* offsets = nullptr;
    const int32_t* tokens = nullptr;
  };
  std::shared_ptr<const void> mapping_;
  std::filesystem::path path_;
  std::string key_, info_;
  int64_t n_ = 0;
  FieldView fields_[kFieldCount];
};

}  // namespace troupe::data
