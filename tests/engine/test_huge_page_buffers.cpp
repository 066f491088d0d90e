// empty_in_huge_pages: big buffers aligned to (and advised onto) 2 MiB huge pages,
// usable as any tensor, and freed with their last reference.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <fstream>
#include <string>

#include <troupe/engine/host_memory.hpp>

using namespace troupe;

namespace {

/// The kernel's transparent-huge-page mode ("always", "madvise" or "never"), bracketed.
std::string huge_page_mode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(in, line);
  const auto open = line.find('['), close = line.find(']');
  return open == std::string::npos || close == std::string::npos ? "" : line.substr(open + 1, close - open - 1);
}

/// AnonHugePages of the mapping holding `address` (/proc/self/smaps), in kB; -1 if none.
int64_t anon_huge_kb(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &begin, &end) == 2 && line.find(':') > line.find('-')) {
      inside = begin <= at && at < end;
      continue;
    }
    if (inside && line.rfind("AnonHugePages:", 0) == 0) return std::stoll(line.substr(14));
  }
  return -1;
}

}  // namespace

TEST_CASE("engine: big host buffers come in huge pages, small ones from torch::empty", "[engine][host_memory]") {
  const auto options = torch::TensorOptions().dtype(torch::kFloat32);
  auto big = engine::empty_in_huge_pages(int64_t{8} << 20, options);  // 32 MiB
  CHECK(big.numel() == (int64_t{8} << 20));
  CHECK(big.scalar_type() == torch::kFloat32);
  CHECK(reinterpret_cast<uintptr_t>(big.data_ptr()) % (uintptr_t{2} << 20) == 0);
  big.fill_(1.5f);  // the pages are faulted in here
  CHECK(big.sum().item<double>() == Approx(1.5 * static_cast<double>(big.numel())));
  if (huge_page_mode() == "always" || huge_page_mode() == "madvise") {
    INFO("transparent huge pages: " << huge_page_mode());
    CHECK(anon_huge_kb(big.data_ptr()) >= 2048);
  }
  // A view keeps the buffer alive after the tensor that made it is gone.
  auto view = big.narrow(0, 1000, 10);
  big = torch::Tensor();
  CHECK(view.sum().item<double>() == Approx(15.0));

  auto small = engine::empty_in_huge_pages(100, options);
  CHECK(small.numel() == 100);
  small.fill_(2.0f);
  CHECK(small.sum().item<double>() == Approx(200.0));
}
