#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/models/safetensors.hpp>

#include "bitwise.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using troupe::models::read_safetensors;
using troupe::models::TensorMap;
using troupe::models::write_safetensors;
using troupe::test::bitwise_equal;
using troupe::test::first_difference;

namespace {

fs::path scratch(const std::string& name) {
  fs::path dir = fs::path(TROUPE_TEST_TMP_DIR) / "safetensors";
  fs::create_directories(dir);
  return dir / name;
}

/// The raw bytes of a safetensors file: little-endian header length, header, data.
std::string file_bytes(const std::string& header, const std::string& data = "") {
  std::string bytes(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return bytes + header + data;
}

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  return n;
}

/// Every dtype, with the awkward cases: non-contiguous, offset views, empty, 0-dim, NaN.
TensorMap every_dtype() {
  torch::manual_seed(7);
  const float inf = std::numeric_limits<float>::infinity();
  TensorMap t;
  t["f64"] = torch::randn({3, 4}, torch::kFloat64);
  t["f32"] = torch::randn({2, 3, 4});
  t["f32_special"] = torch::tensor(std::vector<float>{inf, -inf, std::nanf(""), -0.0f, 1e-45f, 3.4e38f});
  t["f16"] = torch::randn({5}).to(torch::kFloat16);
  t["bf16"] = torch::randn({2, 5}).to(torch::kBFloat16);
  t["i64"] = torch::randint(-(int64_t{1} << 40), int64_t{1} << 40, {6}, torch::kInt64);
  t["i32"] = torch::randint(-100000, 100000, {2, 2}, torch::kInt32);
  t["i16"] = torch::randint(-30000, 30000, {3}, torch::kInt16);
  t["i8"] = torch::randint(-128, 128, {9}, torch::kInt8);
  t["u8"] = torch::randint(0, 256, {4, 1}, torch::kUInt8);
  t["bool"] = torch::randint(0, 2, {7}, torch::kInt64).to(torch::kBool);
  t["empty"] = torch::empty({0, 3});
  t["empty_i64"] = torch::empty({4, 0}, torch::kInt64);
  t["scalar"] = torch::scalar_tensor(3.25, torch::kFloat64);
  t["scalar_bf16"] = torch::scalar_tensor(-2.0, torch::kBFloat16);
  t["transposed"] = torch::randn({3, 4}).t();                       // (4, 3), not contiguous
  t["slice"] = torch::arange(20, torch::kInt32).slice(0, 5, 11);  // storage offset 5
  return t;
}

/// The tensors make_model_fixtures.py writes into safetensors_dtypes.safetensors.
TensorMap python_dtype_fixture() {
  const double inf = std::numeric_limits<double>::infinity();
  auto half_values = torch::tensor(std::vector<float>{-1.5f, 0.0f, 2.25f, -0.0f, 1024.0f, float(inf)}).reshape({2, 3});
  auto ints = [](std::vector<int64_t> v, torch::ScalarType type) { return torch::tensor(v).to(type); };
  TensorMap t;
  t["f64"] = torch::tensor(std::vector<double>{1.0 / 3.0, -2.5e300, 5e-324, -inf}, torch::kFloat64).reshape({2, 2});
  t["f32"] = torch::tensor(std::vector<float>{0.1f, -3.5f, 1e-40f, 3.4e38f, std::nanf(""), -0.0f}).reshape({2, 3});
  t["f16"] = half_values.to(torch::kFloat16);
  t["bf16"] = half_values.to(torch::kBFloat16);
  t["i64"] = ints({std::numeric_limits<int64_t>::min(), -1, 0, (int64_t{1} << 62) + 7}, torch::kInt64);
  t["i32"] = ints({std::numeric_limits<int32_t>::min(), -7, std::numeric_limits<int32_t>::max()}, torch::kInt32);
  t["i16"] = ints({-32768, 12345, 32767}, torch::kInt16);
  t["i8"] = ints({-128, -1, 0, 127}, torch::kInt8).reshape({2, 2});
  t["u8"] = ints({0, 1, 128, 255}, torch::kUInt8);
  t["bool"] = ints({1, 0, 1}, torch::kBool);
  t["empty"] = torch::zeros({0, 3});
  t["scalar"] = torch::scalar_tensor(2.5, torch::kFloat32);
  return t;
}

const fs::path kPythonDtypes = fs::path(TROUPE_FIXTURES_DIR) / "models" / "safetensors_dtypes.safetensors";

}  // namespace

TEST_CASE("safetensors round trip is bitwise for every dtype, empty tensors and scalars", "[safetensors]") {
  auto tensors = every_dtype();
  auto file = scratch("round_trip.safetensors");
  write_safetensors(file, tensors);
  auto back = read_safetensors(file);
  CHECK(first_difference(tensors, back) == "");
  for (const auto& [name, t] : back) {
    INFO(name);
    CHECK(t.is_contiguous());
    CHECK(t.device().is_cpu());
  }
  CHECK(back.at("scalar").dim() == 0);
  CHECK(back.at("empty").sizes() == torch::IntArrayRef({0, 3}));

  // Layout as HF writes it: header padded to 8 bytes with spaces, data in name order
  // with no gaps, metadata kept, and the same bytes every time.
  auto bytes = troupe::read_file(file);
  const uint64_t n = header_length(bytes);
  CHECK(n % 8 == 0);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  CHECK(header["__metadata__"] == nlohmann::json({{"format", "pt"}}));
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    INFO(name);
    CHECK(header[name]["data_offsets"] == nlohmann::json({offset, offset + t.numel() * t.element_size()}));
    offset += t.numel() * t.element_size();
  }
  CHECK(bytes.size() == 8 + n + offset);
  write_safetensors(scratch("round_trip_again.safetensors"), tensors);
  CHECK(troupe::read_file(scratch("round_trip_again.safetensors")) == bytes);
}

TEST_CASE("files written by python safetensors load with the same bits", "[safetensors]") {
  auto expected = python_dtype_fixture();
  auto loaded = read_safetensors(kPythonDtypes);
  CHECK(first_difference(expected, loaded) == "");
  CHECK(bitwise_equal(loaded.at("bf16"), expected.at("bf16")));
  // Written back for the python side to read (see tests/reference/check_hf_load.py and
  // the report of this test's author): our bytes must be a file safetensors accepts.
  write_safetensors(scratch("dtypes_written.safetensors"), loaded, {{"format", "pt"}, {"made_by", "troupe"}});
  CHECK(first_difference(read_safetensors(scratch("dtypes_written.safetensors")), expected) == "");
}

TEST_CASE("corrupt safetensors headers give errors naming the file and the problem", "[safetensors]") {
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  struct Case {
    const char* what;
    std::string bytes;
    std::vector<std::string> expected;
  };
  std::string absurd(8, '\xff');
  std::string beyond = file_bytes("{}");
  beyond[0] = 100;
  std::string deep = std::string(50, '[') + std::string(50, ']');
  const std::vector<Case> cases = {
      {"empty", "", {"shorter than the 8-byte"}},
      {"short", "abc", {"3 bytes", "shorter"}},
      {"absurd", absurd + "{}", {"absurd"}},
      {"beyond", beyond, {"header length 100", "exceeds"}},
      {"not_json", file_bytes("{\"w\": "), {"not valid JSON"}},
      {"not_object", file_bytes("[1, 2]"), {"not an object"}},
      {"deep", file_bytes(deep), {"nests too deeply"}},
      {"entry_not_object", file_bytes(R"({"w": 3})"), {"'w'", "not an object"}},
      {"no_dtype", file_bytes(R"({"w": {"shape": [], "data_offsets": [0, 4]}})", "1234"), {"'w'", "dtype"}},
      {"unknown_dtype", file_bytes(R"({"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}})", "x"),
       {"'w'", "unsupported dtype 'F8_E4M3'"}},
      {"shape_not_list", file_bytes(R"({"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", "12345678"),
       {"'w'", "'shape' must be a list"}},
      {"shape_negative", file_bytes(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", "12345678"),
       {"'w'", "non-negative", "-2"}},
      {"shape_float", file_bytes(R"({"w": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}})", "12345678"),
       {"'w'", "non-negative"}},
      {"shape_string", file_bytes(R"({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}})", "12345678"),
       {"'w'", "non-negative"}},
      {"shape_overflow",
       file_bytes(R"({"w": {"dtype": "F32", "shape": [1099511627776, 1099511627776, 1099511627776], "data_offsets": [0, 8]}})", "12345678"),
       {"'w'", "too many elements"}},
      {"offsets_short", file_bytes(R"({"w": {)" + f32x2 + R"(, "data_offsets": [0]}})", "12345678"),
       {"'w'", "'data_offsets' must be a list"}},
      {"end_before_begin", file_bytes(R"({"w": {)" + f32x2 + R"(, "data_offsets": [8, 0]}})", "12345678"),
       {"'w'", "end 0 < begin 8"}},
      {"outside_data", file_bytes(R"({"w": {)" + f32x2 + R"(, "data_offsets": [0, 8]}})", "1234"),
       {"'w'", "outside the data section"}},
      {"huge_offset", file_bytes(R"({"w": {)" + f32x2 + R"(, "data_offsets": [18446744073709551607, 18446744073709551615]}})", "12345678"),
       {"'w'", "outside the data section"}},
      {"size_mismatch", file_bytes(R"({"w": {)" + f32x2 + R"(, "data_offsets": [0, 4]}})", "12345678"),
       {"'w'", "holds 4 bytes", "needs 2 x 4"}},
      {"overlap",
       file_bytes(R"({"a": {)" + f32x2 + R"(, "data_offsets": [0, 8]}, "b": {)" + f32x2 + R"(, "data_offsets": [4, 12]}})",
                  "123456789012"),
       {"'a'", "'b'", "overlap"}},
      {"metadata_not_strings", file_bytes(R"({"__metadata__": {"format": 1}})"), {"__metadata__", "not a string"}},
      {"metadata_not_object", file_bytes(R"({"__metadata__": ["pt"]})"), {"__metadata__", "object"}},
      {"bad_bool", file_bytes(R"({"b": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}})", std::string("\x01\x02", 2)),
       {"'b'", "BOOL"}},
  };
  for (const auto& c : cases) {
    auto file = scratch(std::string("corrupt_") + c.what + ".safetensors");
    troupe::write_file_atomically(file, c.bytes);
    INFO(c.what);
    try {
      read_safetensors(file);
      FAIL("no error for " << c.what);
    } catch (const troupe::Error& e) {
      std::string message = e.what();
      CHECK_THAT(message, Contains(file.string()));
      for (const auto& part : c.expected) CHECK_THAT(message, Contains(part));
    }
  }
  CHECK_THROWS_WITH(read_safetensors(scratch("does_not_exist.safetensors")),
                    Contains("does_not_exist.safetensors") && Contains("cannot open"));
  CHECK_THROWS_WITH(read_safetensors(fs::path(TROUPE_TEST_TMP_DIR)), Contains("not a regular file"));
}

TEST_CASE("every truncation and header corruption of a real file fails cleanly", "[safetensors]") {
  const std::string bytes = troupe::read_file(kPythonDtypes);
  const auto file = scratch("mangled.safetensors");
  for (size_t length = 0; length < bytes.size(); ++length) {
    troupe::write_file_atomically(file, bytes.substr(0, length));
    INFO("truncated to " << length << " of " << bytes.size() << " bytes");
    CHECK_THROWS_WITH(read_safetensors(file), Contains(file.string()));
  }
  // Any byte of the length or the header replaced: either a file that still parses or a
  // troupe::Error naming the file; never another exception, a crash or a sanitizer report.
  const size_t header_end = 8 + header_length(bytes);
  int errors = 0;
  for (size_t pos = 0; pos < header_end; ++pos) {
    for (char replacement : {'\0', '\xff', '"', '9', '[', '}', ' '}) {
      if (bytes[pos] == replacement) continue;
      std::string mangled = bytes;
      mangled[pos] = replacement;
      troupe::write_file_atomically(file, mangled);
      try {
        read_safetensors(file);
      } catch (const troupe::Error& e) {
        ++errors;
        if (std::string(e.what()).find(file.string()) == std::string::npos)
          FAIL("byte " << pos << " = " << int(replacement) << ": error without the file name: " << e.what());
      }
    }
  }
  CHECK(errors > static_cast<int>(header_end));
}

TEST_CASE("writing refuses what safetensors cannot hold, naming file and tensor", "[safetensors]") {
  auto file = scratch("refused.safetensors");
  CHECK_THROWS_WITH(write_safetensors(file, {{"c", torch::zeros({2}, torch::kComplexFloat)}}),
                    Contains(file.string()) && Contains("'c'") && Contains("ComplexFloat"));
  CHECK_THROWS_WITH(write_safetensors(file, {{"u", torch::Tensor()}}), Contains("'u'") && Contains("undefined"));
  CHECK_THROWS_WITH(write_safetensors(file, {{"s", torch::eye(3).to_sparse()}}), Contains("'s'") && Contains("dense"));
  CHECK_THROWS_WITH(write_safetensors(file, {{"__metadata__", torch::zeros({1})}}), Contains("reserved"));
  CHECK_THROWS_WITH(write_safetensors(scratch("no_such_dir") / "x.safetensors", {{"a", torch::zeros({1})}}),
                    Contains("x.safetensors") && Contains("cannot open for writing"));
  CHECK_FALSE(fs::exists(file));
}
