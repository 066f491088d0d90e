// Walks the kernel-consistency table (consistency_table.hpp): each row's kernel against
// its LibTorch reference.
#include <catch2/catch.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <iomanip>
#include <iostream>
#include <sstream>

#include "consistency_table.hpp"

namespace troupe::test {

std::vector<ConsistencyRow>& consistency_rows() {
  static std::vector<ConsistencyRow> rows;
  return rows;
}

double normalised_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  auto a = actual.detach().cpu().to(torch::kDouble);
  auto b = expected.detach().cpu().to(torch::kDouble);
  const double err = (a - b).pow(2).sum().item<double>();
  const double norm = b.pow(2).sum().item<double>();
  return norm > 0 ? err / norm : err;
}

namespace {

/// Runs the rows of one device; returns how many ran.
int walk(const std::string& device) {
  int ran = 0;
  for (const auto& row : consistency_rows()) {
    if (row.device != device) continue;
    const std::string name = row.op + " " + row.shape + " " + row.dtype + " " + row.device;
    INFO(name);
    ConsistencyOutputs out;
    REQUIRE_NOTHROW(out = row.run());
    REQUIRE(out.kernel.size() == out.reference.size());
    REQUIRE(!out.kernel.empty());
    for (size_t i = 0; i < out.kernel.size(); ++i) {
      INFO("output " << i);
      const auto& k = out.kernel[i];
      const auto& r = out.reference[i];
      REQUIRE(k.sizes() == r.sizes());
      if (k.numel() == 0) continue;
      // A NaN or inf where the reference has a finite value is always wrong.
      auto finite_k = torch::isfinite(k.detach().cpu().to(torch::kDouble));
      auto finite_r = torch::isfinite(r.detach().cpu().to(torch::kDouble));
      REQUIRE(torch::equal(finite_k, finite_r));
      auto keep = finite_r;
      const double nmse = normalised_error(k.detach().cpu().to(torch::kDouble).masked_select(keep),
                                           r.detach().cpu().to(torch::kDouble).masked_select(keep));
      INFO("nmse " << nmse << " (max " << row.max_nmse << ")");
      CHECK(nmse <= row.max_nmse);
    }
    ++ran;
  }
  return ran;
}

}  // namespace

TEST_CASE("kernel consistency table: every CPU kernel against its reference", "[kernels]") {
  const int ran = walk("cpu");
  CHECK(ran > 0);
}

TEST_CASE("kernel consistency table: every CUDA kernel against its reference", "[gpu][kernels]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  const int ran = walk("cuda");
  CHECK(ran > 0);
}

}  // namespace troupe::test
