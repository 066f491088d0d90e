/// Writing and memory-mapping the tokenized cache format.
#include <troupe/data/token_cache.hpp>

#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

namespace troupe::data {
namespace {

constexpr char kMagic[8] = {'T', 'R', 'P', 'D', 'A', 'T', 'A', '\0'};

void pad8(std::ofstream& out, uint64_t written) {
  static const char zeros[8] = {};
  if (written % 8) out.write(zeros, static_cast<std::streamsize>(8 - written % 8));
}

template <typename T>
void put(std::ofstream& out, T v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof(T));
}

void put_text(std::ofstream& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
  pad8(out, s.size());
}

uint64_t padded(uint64_t bytes) { return (bytes + 7) / 8 * 8; }

}  // namespace

void write_token_cache(const std::filesystem::path& path, const std::string& key, const std::string& info,
                       const TokenizedPhase& phase) {
  uint32_t mask = 0;
  const int64_t n = phase.stats.kept;
  for (Field f : phase_fields(phase.phase)) {
    mask |= 1u << static_cast<int>(f);
    if (static_cast<int64_t>(phase.fields[static_cast<int>(f)].size()) != n)
      throw Error(path.string() + ": field '" + field_name(f) + "' holds " +
                  std::to_string(phase.fields[static_cast<int>(f)].size()) + " samples, expected " + std::to_string(n));
  }
  write_file_atomically(path, [&](std::ofstream& out) {
    out.write(kMagic, sizeof(kMagic));
    put<uint32_t>(out, kCacheFormatVersion);
    put<uint32_t>(out, mask);
    put_text(out, key);
    put_text(out, info);
    put<int64_t>(out, n);
    for (int f = 0; f < kFieldCount; ++f) {
      if (!(mask & (1u << f))) continue;
      int64_t offset = 0;
      put<int64_t>(out, 0);
      for (const auto& seq : phase.fields[f]) put<int64_t>(out, offset += static_cast<int64_t>(seq.size()));
      for (const auto& seq : phase.fields[f])
        out.write(reinterpret_cast<const char*>(seq.data()), static_cast<std::streamsize>(seq.size() * sizeof(int32_t)));
      pad8(out, static_cast<uint64_t>(offset) * sizeof(int32_t));
    }
  });
}

PhaseDataset PhaseDataset::open(const std::filesystem::path& path, const std::string& expected_key) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path.string() + ": cannot open tokenized cache (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(path.string() + ": cannot stat tokenized cache");
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  void* base = size ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  ::close(fd);
  if (size && base == MAP_FAILED) throw Error(path.string() + ": cannot map tokenized cache");
  PhaseDataset ds;
  ds.mapping_ = std::shared_ptr<const void>(base, [size](const void* p) {
    if (p) ::munmap(const_cast<void*>(p), size);
  });
  ds.path_ = path;
  const auto* bytes = static_cast<const char*>(base);
  uint64_t at = 0;
  auto bad = [&](const std::string& why) {
    return Error(path.string() + ": not a valid troupe tokenized cache (" + why + "); delete it to rebuild");
  };
  auto need = [&](uint64_t n, const char* what) {
    if (n > size || at > size - n) throw bad(std::string("truncated at ") + what);
  };
  auto take = [&](auto& v, const char* what) {
    need(sizeof(v), what);
    std::memcpy(&v, bytes + at, sizeof(v));
    at += sizeof(v);
  };
  auto take_text = [&](std::string& s, const char* what) {
    uint64_t len = 0;
    take(len, what);
    need(padded(len), what);
    s.assign(bytes + at, len);
    at += padded(len);
  };
  need(sizeof(kMagic), "magic");
  if (std::memcmp(bytes, kMagic, sizeof(kMagic)) != 0) throw bad("wrong magic");
  at = sizeof(kMagic);
  uint32_t version = 0, mask = 0;
  take(version, "version");
  if (version != kCacheFormatVersion)
    throw bad("format version " + std::to_string(version) + ", expected " + std::to_string(kCacheFormatVersion));
  take(mask, "field mask");
  take_text(ds.key_, "key");
  take_text(ds.info_, "info");
  take(ds.n_, "sample count");
  if (ds.n_ < 0) throw bad("negative sample count");
  for (int f = 0; f < kFieldCount; ++f) {
    if (!(mask & (1u << f))) continue;
    need((static_cast<uint64_t>(ds.n_) + 1) * sizeof(int64_t), "offsets");
    const auto* offsets = reinterpret_cast<const int64_t*>(bytes + at);
    at += (static_cast<uint64_t>(ds.n_) + 1) * sizeof(int64_t);
    if (offsets[0] != 0) throw bad("offsets do not start at 0");
    for (int64_t i = 0; i < ds.n_; ++i)
      if (offsets[i + 1] < offsets[i]) throw bad("offsets decrease");
    const auto token_bytes = static_cast<uint64_t>(offsets[ds.n_]) * sizeof(int32_t);
    need(padded(token_bytes), "tokens");
    ds.fields_[f] = {offsets, reinterpret_cast<const int32_t*>(bytes + at)};
    at += padded(token_bytes);
  }
  if (at != size) throw bad("trailing bytes");
  if (!expected_key.empty() && ds.key_ != expected_key)
    throw Error(path.string() + ": tokenized cache was built for another key (stale); delete it to rebuild");
  return ds;
}

TokenSpan PhaseDataset::get(Field f, int64_t i) const {
  const auto& view = fields_[static_cast<int>(f)];
  if (!view.offsets) throw Error(path_.string() + ": field '" + field_name(f) + "' is not stored in this cache");
  if (i < 0 || i >= n_)
    throw Error(path_.string() + ": sample " + std::to_string(i) + " out of range (size " + std::to_string(n_) + ")");
  return {view.tokens + view.offsets[i], view.offsets[i + 1] - view.offsets[i]};
}

}  // namespace troupe::data
