#pragma once
/// Helpers shared by the data tests: fixture paths, scratch folders, small files.
#include <filesystem>
#include <fstream>
#include <string>

namespace troupe::test {

inline std::filesystem::path data_fixture(const std::string& name) {
  return std::filesystem::path(TROUPE_FIXTURES_DIR) / "data" / name;
}

/// The tiny byte-level BPE tokenizer of the OPT fixture: <pad> 0, <s> 1 (prepended), </s> 2 (EOS).
inline std::filesystem::path tokenizer_fixture() {
  return std::filesystem::path(TROUPE_FIXTURES_DIR) / "models" / "opt";
}

inline std::filesystem::path data_scratch(const std::string& name) {
  auto dir = std::filesystem::path(TROUPE_TEST_TMP_DIR) / "data" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::filesystem::path write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

}  // namespace troupe::test
