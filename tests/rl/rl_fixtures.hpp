#pragma once
/// Helpers of the RL tests: reading the PyTorch fixtures of make_rl_fixtures.py and
/// comparing tensors with a stated tolerance.
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <troupe/common/files.hpp>

namespace troupe::test {

inline nlohmann::json rl_fixture(const std::string& name) {
  const auto path = std::filesystem::path(TROUPE_FIXTURES_DIR) / "rl" / name;
  return nlohmann::json::parse(troupe::read_file(path));
}

/// A tensor written by make_rl_fixtures.py's tensor_json: {"shape", "dtype", "data"}.
inline torch::Tensor fixture_tensor(const nlohmann::json& j) {
  const auto shape = j.at("shape").get<std::vector<int64_t>>();
  if (j.at("dtype") == "int64") {
    const auto data = j.at("data").get<std::vector<int64_t>>();
    return torch::tensor(data, torch::kLong).view(shape);
  }
  const auto data = j.at("data").get<std::vector<double>>();  // fp32 values, exact in double
  return torch::tensor(data, torch::kDouble).to(torch::kFloat).view(shape);
}

/// Largest absolute difference, so a failure prints how far off it was.
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  if (a.numel() == 0) return 0.0;
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

#define CHECK_CLOSE(a, b, tol)                                   \
  do {                                                           \
    INFO(#a << " vs " << #b);                                    \
    CHECK(::troupe::test::max_abs_diff((a), (b)) <= (tol));      \
  } while (0)

}  // namespace troupe::test
