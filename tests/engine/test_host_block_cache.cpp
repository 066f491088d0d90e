/// The host block cache: a freed large block comes back for the next request of its
/// size, the cache never holds more than its cap, small blocks and oneDNN's raw
/// allocations still work, and tensors computed through it are right.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <vector>

#include <c10/core/CPUAllocator.h>

#include <troupe/engine/host_block_cache.hpp>

using namespace troupe;

TEST_CASE("engine: the host block cache reuses freed large blocks within its cap", "[engine][memory]") {
  if (const char* off = std::getenv("TROUPE_SYSTEM_ALLOCATOR"); off && *off) {
    CHECK_FALSE(engine::use_host_block_cache(int64_t{64} << 20));
    return;
  }
  constexpr int64_t kCap = int64_t{64} << 20;
  REQUIRE(engine::use_host_block_cache(kCap));
  const int64_t block = int64_t{4} << 20;  // bytes of a (1 << 20) float tensor

  // Freed, then asked again with the same size: the same memory, counted as a hit.
  void* first = nullptr;
  {
    auto t = torch::empty({1 << 20});
    first = t.data_ptr();
  }
  const auto before = engine::host_block_cache_stats();
  CHECK(before.cached_bytes >= block);
  auto again = torch::empty({1 << 20});
  CHECK(again.data_ptr() == first);
  const auto after = engine::host_block_cache_stats();
  CHECK(after.hits == before.hits + 1);
  CHECK(after.cached_bytes == before.cached_bytes - block);

  // Twenty blocks freed at once: the cache keeps at most its cap.
  {
    std::vector<torch::Tensor> many;
    for (int i = 0; i < 20; ++i) many.push_back(torch::full({1 << 20}, static_cast<float>(i)));
    for (int i = 0; i < 20; ++i) CHECK(many[static_cast<size_t>(i)].sum().item<double>() == 1048576.0 * i);
  }
  CHECK(engine::host_block_cache_stats().cached_bytes <= kCap);
  CHECK(engine::host_block_cache_stats().cached_bytes >= kCap - block);

  // A reused block holds its new contents, not the old ones.
  auto a = torch::randn({1024, 1024});
  auto b = torch::randn({1024, 1024});
  const auto expected = torch::matmul(a.to(torch::kDouble), b.to(torch::kDouble));
  for (int i = 0; i < 3; ++i) CHECK(torch::allclose(torch::matmul(a, b).to(torch::kDouble), expected, 1e-4, 1e-3));

  // Small tensors and raw allocations (oneDNN's scratch goes through these) still work.
  auto small = torch::arange(10, torch::kFloat);
  CHECK(small.sum().item<double>() == 45.0);
  auto* allocator = c10::GetCPUAllocator();
  void* raw_small = allocator->raw_allocate(100);
  void* raw_large = allocator->raw_allocate(size_t{3} << 20);
  REQUIRE(raw_small != nullptr);
  REQUIRE(raw_large != nullptr);
  allocator->raw_deallocate(raw_small);
  allocator->raw_deallocate(raw_large);

  engine::release_host_block_cache();
  CHECK(engine::host_block_cache_stats().cached_bytes == 0);
}
