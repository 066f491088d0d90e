#pragma once
/// Helpers shared by the transport tests and their peer process.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>

#include <troupe/common/error.hpp>
#include <troupe/transport/tensor_batch.hpp>

namespace troupe::test {

/// One tensor of every wire dtype, with values drawn from `seed` (random bit patterns
/// for floats too, so NaN payloads and signed zeros must survive the trip), plus an
/// empty tensor and a 0-d scalar.
inline transport::TensorBatch all_dtypes_batch(std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto bytes = [&](std::int64_t n) {  // (n) uint8 random bytes
    return at::randint(0, 256, {n}, gen, at::kByte);
  };
  auto from_bytes = [&](at::ScalarType type, std::vector<std::int64_t> shape) {
    std::int64_t numel = 1;
    for (auto d : shape) numel *= d;
    return bytes(numel * static_cast<std::int64_t>(c10::elementSize(type))).view(type).view(shape);
  };
  transport::TensorBatch batch;
  batch.insert("f32", from_bytes(at::kFloat, {3, 5}));
  batch.insert("f64", from_bytes(at::kDouble, {7}));
  batch.insert("f16", from_bytes(at::kHalf, {2, 3, 4}));
  batch.insert("bf16", from_bytes(at::kBFloat16, {9, 2}));
  batch.insert("i8", from_bytes(at::kChar, {11}));
  batch.insert("i16", from_bytes(at::kShort, {4, 4}));
  batch.insert("i32", from_bytes(at::kInt, {6, 1}));
  batch.insert("i64", from_bytes(at::kLong, {5}));
  batch.insert("u8", from_bytes(at::kByte, {13}));
  batch.insert("bool", at::randint(0, 2, {17}, gen, at::kLong).to(at::kBool));
  batch.insert("empty", at::empty({0, 4}, at::kFloat));
  batch.insert("scalar", at::full({}, 42, at::kLong));
  return batch;
}

/// Same names, dtypes, shapes and bytes.
inline bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  if (a.numel() == 0) return true;  // an empty tensor's data pointer may be null, which memcmp must not get
  auto ca = a.to(at::kCPU).contiguous();
  auto cb = b.to(at::kCPU).contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

inline std::string batch_difference(const transport::TensorBatch& expected, const transport::TensorBatch& actual) {
  if (expected.size() != actual.size()) {
    return "sizes differ: " + std::to_string(expected.size()) + " vs " + std::to_string(actual.size());
  }
  for (const auto& [name, tensor] : expected) {
    if (!actual.contains(name)) return "missing '" + name + "'";
    if (!bit_equal(tensor, actual.get(name))) return "tensor '" + name + "' differs";
  }
  return {};
}

inline std::filesystem::path transport_scratch(const std::string& name) {
  auto dir = std::filesystem::path(TROUPE_TEST_TMP_DIR) / "transport" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_bytes(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  auto temp = path;
  temp += ".tmp";
  {
    std::ofstream out(temp, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  std::filesystem::rename(temp, path);  // readers never see a half-written address
}

/// Waits for `path` to appear (written with write_bytes) and returns its bytes.
inline std::vector<std::uint8_t> wait_for_bytes(const std::filesystem::path& path, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!std::filesystem::exists(path)) {
    if (std::chrono::steady_clock::now() > deadline) throw Error("test: " + path.string() + " never appeared");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

/// Deterministic input of `rank` for the collective tests: integer-valued floats so
/// sums are exact in any order. (n)
inline at::Tensor collective_input(int rank, std::int64_t n, at::ScalarType type) {
  auto values = (at::arange(n, at::kLong) * 7 + rank * 13) % 23 - 11;  // (n) in [-11, 11]
  return values.to(type);
}

}  // namespace troupe::test
