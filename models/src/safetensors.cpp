/// The safetensors file format: an 8-byte little-endian header length N, N bytes of JSON
/// header (`{name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}`), then the
/// raw little-endian tensor data. The reader trusts nothing in the file: every length and
/// offset is checked before a byte of data is touched.
#include <troupe/models/safetensors.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian and is copied as is");

namespace troupe::models {
namespace {

/// The Rust reference reader refuses larger headers; a real one is kilobytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
/// A valid header nests three levels deep (root, tensor, offsets); deeper is hostile.
constexpr int kMaxHeaderDepth = 4;

struct DtypeInfo {
  std::string_view name;
  torch::ScalarType type;
  int64_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64, 8}, {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8}, {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo* dtype_by_name(std::string_view name) {
  for (const auto& d : kDtypes)
    if (d.name == name) return &d;
  return nullptr;
}

const DtypeInfo* dtype_by_type(torch::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.type == type) return &d;
  return nullptr;
}

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  throw Error(file.string() + ": " + what);
}

[[noreturn]] void fail_tensor(const std::filesystem::path& file, const std::string& name,
                              const std::string& what) {
  fail(file, "tensor '" + name + "': " + what);
}

/// A read-only mapping of a whole file: a multi-gigabyte checkpoint is copied once, from
/// the page cache into the tensors, never held twice in memory.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, std::string("cannot open for reading: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(path, "not a regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        fail(path, std::string("cannot map into memory: ") + std::strerror(errno));
      }
      data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

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

/// One tensor as the header describes it, validated against the data section.
struct Entry {
  std::string name;
  const DtypeInfo* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

uint64_t non_negative_int(const nlohmann::json& v, const std::filesystem::path& file,
                          const std::string& name, const char* field) {
  if (!v.is_number_unsigned())
    fail_tensor(file, name, std::string(field) + " must hold non-negative integers, got " + v.dump());
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& name, const nlohmann::json& spec,
                  const std::filesystem::path& file, uint64_t data_size) {
  Entry e;
  e.name = name;
  if (!spec.is_object()) fail_tensor(file, name, "header entry is not an object");
  auto dtype = spec.find("dtype");
  if (dtype == spec.end() || !dtype->is_string()) fail_tensor(file, name, "missing string field 'dtype'");
  e.dtype = dtype_by_name(dtype->get_ref<const std::string&>());
  if (e.dtype == nullptr)
    fail_tensor(file, name, "unsupported dtype '" + dtype->get<std::string>() +
                                "' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");

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
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(e.dtype->size), &bytes) ||
      bytes != e.end - e.begin)
    fail_tensor(file, name, "holds " + std::to_string(e.end - e.begin) + " bytes but shape " +
                                shape->dump() + " of " + std::string(e.dtype->name) + " needs " +
                                std::to_string(numel) + " x " + std::to_string(e.dtype->size));
  return e;
}

void check_metadata(const nlohmann::json& meta, const std::filesystem::path& file) {
  if (!meta.is_object()) fail(file, "'__metadata__' must be an object of strings");
  for (const auto& [key, value] : meta.items())
    if (!value.is_string()) fail(file, "'__metadata__' value of '" + key + "' is not a string");
}

/// Parses and checks the header; entries come back sorted by their data offsets.
std::vector<Entry> parse_header(std::string_view text, const std::filesystem::path& file,
                                uint64_t data_size) {
  if (nests_deeper_than(text, kMaxHeaderDepth)) fail(file, "header JSON nests too deeply");
  auto header = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) fail(file, "header is not valid JSON");
  if (!header.is_object()) fail(file, "header JSON is not an object");

  std::vector<Entry> entries;
  for (const auto& [name, spec] : header.items()) {
    if (name == "__metadata__") check_metadata(spec, file);
    else entries.push_back(parse_entry(name, spec, file, data_size));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const Entry* previous = nullptr;  // the last entry that owns bytes
  for (const auto& e : entries) {
    if (e.begin == e.end) continue;  // empty tensors own no bytes
    if (previous != nullptr && e.begin < previous->end)
      fail(file, "tensors '" + previous->name + "' and '" + e.name + "' overlap in the data section");
    previous = &e;
  }
  return entries;
}

/// Copies one tensor out of the mapping into owned memory (the mapping's alignment is
/// whatever the header length made it).
torch::Tensor copy_tensor(const Entry& e, const uint8_t* data, const std::filesystem::path& file) {
  const uint8_t* src = data + e.begin;
  const size_t bytes = e.end - e.begin;
  if (e.dtype->type == torch::kBool) {
    // Any byte but 0 or 1 is not a valid C++ bool.
    if (std::any_of(src, src + bytes, [](uint8_t b) { return b > 1; }))
      fail_tensor(file, e.name, "BOOL data holds a byte other than 0 or 1");
  }
  auto tensor = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
  if (bytes > 0) std::memcpy(tensor.data_ptr(), src, bytes);
  return tensor;
}

/// A tensor's memory inside a file mapping: the mapping lives while any view of it does.
struct MappedView {
  std::shared_ptr<MappedFile> file;
};
void delete_mapped_view(void* context) { delete static_cast<MappedView*>(context); }

/// A read-only tensor over `e`'s bytes in the mapping (no copy), or a copy where the
/// bytes are not aligned for the dtype (or are BOOL, which copy_tensor checks).
torch::Tensor view_tensor(const Entry& e, const std::shared_ptr<MappedFile>& mapping, const uint8_t* data,
                          const std::filesystem::path& file) {
  const uint8_t* src = data + e.begin;
  const size_t element = static_cast<size_t>(c10::elementSize(e.dtype->type));
  if (e.dtype->type == torch::kBool || e.end == e.begin || reinterpret_cast<uintptr_t>(src) % element != 0)
    return copy_tensor(e, data, file);
  auto* context = new MappedView{mapping};
  c10::DataPtr pointer(const_cast<uint8_t*>(src), context, &delete_mapped_view, c10::Device(c10::kCPU));
  c10::Storage storage(c10::Storage::use_byte_size_t(), e.end - e.begin, std::move(pointer), nullptr, false);
  return torch::empty({0}, torch::TensorOptions().dtype(e.dtype->type)).set_(storage, 0, e.shape);
}

TensorMap read_safetensors(const std::filesystem::path& file, bool mapped_views) {
  auto mapping = std::make_shared<MappedFile>(file);
  const MappedFile& mapped = *mapping;
  const uint64_t size = mapped.size();
  if (size < 8)
    fail(file, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length: "
                   "not a safetensors file");
  uint64_t header_size = 0;
  std::memcpy(&header_size, mapped.data(), 8);
  if (header_size > kMaxHeaderBytes)
    fail(file, "header length " + std::to_string(header_size) + " is absurd (limit " +
                   std::to_string(kMaxHeaderBytes) + "): not a safetensors file");
  if (header_size > size - 8)
    fail(file, "header length " + std::to_string(header_size) + " exceeds the " +
                   std::to_string(size - 8) + " bytes after it (truncated file?)");

  std::string_view text(reinterpret_cast<const char*>(mapped.data()) + 8, header_size);
  const uint8_t* data = mapped.data() + 8 + header_size;
  auto entries = parse_header(text, file, size - 8 - header_size);

  TensorMap tensors;
  for (const auto& e : entries)
    tensors.emplace(e.name, mapped_views ? view_tensor(e, mapping, data, file) : copy_tensor(e, data, file));
  return tensors;
}

}  // namespace

TensorMap read_safetensors(const std::filesystem::path& file) { return read_safetensors(file, false); }

TensorMap map_safetensors(const std::filesystem::path& file) { return read_safetensors(file, true); }

void release_mapped_pages(const torch::Tensor& tensor) {
  if (!tensor.defined() || !tensor.has_storage()) return;
  const auto& pointer = tensor.storage().data_ptr();
  if (pointer.get_deleter() != &delete_mapped_view) return;  // owned memory: nothing to drop
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(pointer.get());
  const auto end = begin + tensor.storage().nbytes();
  // Whole pages inside the tensor only: a page it shares with a neighbour stays.
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void write_safetensors(const std::filesystem::path& file, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata, const TensorMaterializer& materialize) {
  // ordered_json keeps "__metadata__" first and tensors in name order, as written below.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") fail(file, "'__metadata__' is reserved and cannot name a tensor");
    if (!tensor.defined()) fail_tensor(file, name, "tensor is undefined");
    if (tensor.layout() != torch::kStrided) fail_tensor(file, name, "only dense (strided) tensors can be written");
    const DtypeInfo* dtype = dtype_by_type(tensor.scalar_type());
    if (dtype == nullptr)
      fail_tensor(file, name, std::string("dtype ") + c10::toString(tensor.scalar_type()) +
                                  " has no safetensors counterpart here");
    const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * dtype->size;
    header[name] = {{"dtype", std::string(dtype->name)}, {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail(file, std::string("cannot encode the header (tensor names must be UTF-8): ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned, as HF pads

  write_file_atomically(file, [&](std::ofstream& out) {
    const uint64_t header_size = text.size();
    out.write(reinterpret_cast<const char*>(&header_size), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& [name, tensor] : tensors) {
      // One tensor at a time on the CPU: a GPU model is never copied whole.
      auto cpu = (materialize ? materialize(name, tensor) : tensor).to(torch::kCPU).contiguous();
      TORCH_CHECK(cpu.sizes() == tensor.sizes() && cpu.scalar_type() == tensor.scalar_type(), file.string(), ": tensor ",
                  name, " changed shape or dtype when materialised");
      out.write(static_cast<const char*>(cpu.data_ptr()),
                static_cast<std::streamsize>(cpu.numel() * cpu.element_size()));
    }
  });
}

}  // namespace troupe::models
