#pragma once
/// Small file helpers shared by every folder: whole-file reads and atomic writes.
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <system_error>
#include <unistd.h>

#include <troupe/common/error.hpp>

namespace troupe {

/// Reads a whole file; throws troupe::Error naming it when it cannot be opened.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open for reading");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Writes `path` by calling `write` on a temporary file beside it, then renames it
/// into place: a crash never leaves a half-written file where a good one was.
inline void write_file_atomically(const std::filesystem::path& path,
                                  const std::function<void(std::ofstream&)>& write) {
  auto tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path.string() + ": cannot open for writing");
    write(out);
    out.flush();
    if (!out) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw Error(path.string() + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error(path.string() + ": cannot rename temporary file into place");
  }
}

inline void write_file_atomically(const std::filesystem::path& path, const std::string& bytes) {
  write_file_atomically(path, [&](std::ofstream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

}  // namespace troupe
