// CUDA device detection against torch's own view. Skipped (with a warning) without a GPU.
#include <catch2/catch.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "bytes.hpp"
#include <troupe/placement/resources.hpp>

using namespace troupe::placement;

TEST_CASE("CUDA: detected devices match torch's and their free memory moves", "[gpu][placement]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  const auto before = detect_cuda_devices();
  REQUIRE(static_cast<int64_t>(before.size()) == static_cast<int64_t>(torch::cuda::device_count()));
  for (const auto& gpu : before) {
    CHECK(gpu.memory_total > kGiB);
    CHECK(gpu.memory_free <= gpu.memory_total);
  }
  // Holding 512 MiB on cuda:0 shows up as less free memory.
  auto block = torch::empty({512 * kMiB}, torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA, 0));
  const auto after = detect_cuda_devices();
  CHECK(after.at(0).memory_free <= before.at(0).memory_free - 500 * kMiB);
  CHECK(detect_local_node().gpus.size() == before.size());
}
