#include "safetensors_header.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the header length is read as a little-endian integer");

namespace troupe::models::safetensors {
namespace {

/// The Rust reference reader refuses larger headers; a real one is kilobytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
/// A valid header nests three levels deep (root, tensor, offsets); deeper is hostile.
constexpr int kMaxHeaderDepth = 4;

[[noreturn]] void fail(const std::string& file, const std::string& what) { throw Error(file + ": " + what); }

[[noreturn]] void fail_tensor(const std::string& file, const std::string& name, const std::string& what) {
  fail(file, "tensor '" + name + "': " + what);
}

const Dtype* dtype_by_name(std::string_view name) {
  for (const auto& d : kDtypes)
    if (d.name == name) return &d;
  return nullptr;
}

/// True when brackets nest deeper than `max_depth` outside strings: checked before
/// parsing so that hostile nesting costs neither stack nor memory.
bool nests_deeper_than(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

uint64_t non_negative_int(const nlohmann::json& v, const std::string& file, const std::string& name,
                          const char* field) {
  if (!v.is_number_unsigned())
    fail_tensor(file, name, std::string(field) + " must hold non-negative integers, got " + v.dump());
  return v.get<uint64_t>();
}

HeaderEntry parse_entry(const std::string& name, const nlohmann::json& spec, const std::string& file,
                        uint64_t data_size) {
  if (!spec.is_object()) fail_tensor(file, name, "header entry is not an object");
  auto dtype_field = spec.find("dtype");
  if (dtype_field == spec.end() || !dtype_field->is_string()) fail_tensor(file, name, "missing string field 'dtype'");
  const Dtype* dtype = dtype_by_name(dtype_field->get_ref<const std::string&>());
  if (dtype == nullptr)
    fail_tensor(file, name, "unsupported dtype '" + dtype_field->get<std::string>() +
                                "' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
  HeaderEntry e{name, *dtype, {}, 0, 0};

  auto shape = spec.find("shape");
  if (shape == spec.end() || !shape->is_array())
    fail_tensor(file, name, "'shape' must be a list of non-negative integers");
  uint64_t numel = 1;
  for (const auto& dim : *shape) {
    uint64_t d = non_negative_int(dim, file, name, "'shape'");
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, d, &numel))
      fail_tensor(file, name, "shape " + shape->dump() + " has too many elements");
    e.shape.push_back(static_cast<int64_t>(d));
  }

  auto offsets = spec.find("data_offsets");
  if (offsets == spec.end() || !offsets->is_array() || offsets->size() != 2)
    fail_tensor(file, name, "'data_offsets' must be a list [begin, end]");
  e.begin = non_negative_int((*offsets)[0], file, name, "'data_offsets'");
  e.end = non_negative_int((*offsets)[1], file, name, "'data_offsets'");
  if (e.end < e.begin)
    fail_tensor(file, name, "data_offsets end " + std::to_string(e.end) + " < begin " + std::to_string(e.begin));
  if (e.end > data_size)
    fail_tensor(file, name, "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                                "] lie outside the data section of " + std::to_string(data_size) +
                                " bytes (truncated file?)");
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype->size), &bytes) || bytes != e.end - e.begin)
    fail_tensor(file, name, "holds " + std::to_string(e.end - e.begin) + " bytes but shape " + shape->dump() +
                                " of " + std::string(dtype->name) + " needs " + std::to_string(numel) + " x " +
                                std::to_string(dtype->size));
  return e;
}

void check_metadata(const nlohmann::json& meta, const std::string& file) {
  if (!meta.is_object()) fail(file, "'__metadata__' must be an object of strings");
  for (const auto& [key, value] : meta.items())
    if (!value.is_string()) fail(file, "'__metadata__' value of '" + key + "' is not a string");
}

}  // namespace

Header parse_header(const uint8_t* bytes, uint64_t size, const std::string& file) {
  if (size < 8)
    fail(file, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length: "
                   "not a safetensors file");
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes, 8);
  if (header_size > kMaxHeaderBytes)
    fail(file, "header length " + std::to_string(header_size) + " is absurd (limit " +
                   std::to_string(kMaxHeaderBytes) + "): not a safetensors file");
  if (header_size > size - 8)
    fail(file, "header length " + std::to_string(header_size) + " exceeds the " + std::to_string(size - 8) +
                   " bytes after it (truncated file?)");

  Header out;
  out.data_offset = 8 + header_size;
  out.data_size = size - out.data_offset;
  std::string_view text(reinterpret_cast<const char*>(bytes) + 8, header_size);
  if (nests_deeper_than(text, kMaxHeaderDepth)) fail(file, "header JSON nests too deeply");
  auto header = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) fail(file, "header is not valid JSON");
  if (!header.is_object()) fail(file, "header JSON is not an object");

  for (const auto& [name, spec] : header.items()) {
    if (name == "__metadata__") check_metadata(spec, file);
    else out.entries.push_back(parse_entry(name, spec, file, out.data_size));
  }
  std::sort(out.entries.begin(), out.entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const HeaderEntry* previous = nullptr;  // the last entry that owns bytes
  for (const auto& e : out.entries) {
    if (e.begin == e.end) continue;  // empty tensors own no bytes
    if (previous != nullptr && e.begin < previous->end)
      fail(file, "tensors '" + previous->name + "' and '" + e.name + "' overlap in the data section");
    previous = &e;
  }
  return out;
}

}  // namespace troupe::models::safetensors
