/// The safetensors file format: an 8-byte little-endian header length N, N bytes of JSON
/// header (`{name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}`), then the
/// raw little-endian tensor data. The reader trusts nothing in the file: the header is
/// checked (safetensors_header.cpp) before a byte of data is touched.
#include <troupe/models/safetensors.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

#include "safetensors_header.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian and is copied as is");

namespace troupe::models {
namespace {

using safetensors::HeaderEntry;

/// The LibTorch type of each safetensors dtype (safetensors::kDtypes, with their sizes).
struct TorchDtype {
  std::string_view name;
  torch::ScalarType type;
};

constexpr TorchDtype kTorchDtypes[] = {
    {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
    {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},   {"I8", torch::kInt8},
    {"U8", torch::kUInt8},    {"BOOL", torch::kBool},
};

torch::ScalarType torch_type(const safetensors::Dtype& dtype) {
  for (const auto& d : kTorchDtypes)
    if (d.name == dtype.name) return d.type;
  throw Error("safetensors dtype " + std::string(dtype.name) + " has no LibTorch type");  // the tables disagree
}

const TorchDtype* dtype_by_type(torch::ScalarType type) {
  for (const auto& d : kTorchDtypes)
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

/// Copies one tensor out of the mapping into owned memory (the mapping's alignment is
/// whatever the header length made it).
torch::Tensor copy_tensor(const HeaderEntry& e, const uint8_t* data, const std::filesystem::path& file) {
  const uint8_t* src = data + e.begin;
  const size_t bytes = e.end - e.begin;
  const auto type = torch_type(e.dtype);
  if (type == torch::kBool) {
    // Any byte but 0 or 1 is not a valid C++ bool.
    if (std::any_of(src, src + bytes, [](uint8_t b) { return b > 1; }))
      fail_tensor(file, e.name, "BOOL data holds a byte other than 0 or 1");
  }
  auto tensor = torch::empty(e.shape, torch::TensorOptions().dtype(type));
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
torch::Tensor view_tensor(const HeaderEntry& e, const std::shared_ptr<MappedFile>& mapping, const uint8_t* data,
                          const std::filesystem::path& file) {
  const uint8_t* src = data + e.begin;
  const auto type = torch_type(e.dtype);
  const size_t element = static_cast<size_t>(c10::elementSize(type));
  if (type == torch::kBool || e.end == e.begin || reinterpret_cast<uintptr_t>(src) % element != 0)
    return copy_tensor(e, data, file);
  auto* context = new MappedView{mapping};
  c10::DataPtr pointer(const_cast<uint8_t*>(src), context, &delete_mapped_view, c10::Device(c10::kCPU));
  c10::Storage storage(c10::Storage::use_byte_size_t(), e.end - e.begin, std::move(pointer), nullptr, false);
  return torch::empty({0}, torch::TensorOptions().dtype(type)).set_(storage, 0, e.shape);
}

TensorMap read_safetensors(const std::filesystem::path& file, bool mapped_views) {
  auto mapping = std::make_shared<MappedFile>(file);
  const auto header = safetensors::parse_header(mapping->data(), mapping->size(), file.string());
  const uint8_t* data = mapping->data() + header.data_offset;

  TensorMap tensors;
  for (const auto& e : header.entries)
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
    const TorchDtype* dtype = dtype_by_type(tensor.scalar_type());
    if (dtype == nullptr)
      fail_tensor(file, name, std::string("dtype ") + c10::toString(tensor.scalar_type()) +
                                  " has no safetensors counterpart here");
    const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
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
