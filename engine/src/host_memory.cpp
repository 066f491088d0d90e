#include <troupe/engine/host_memory.hpp>

#include <climits>
#include <cstdlib>
#include <string>

#include <torch/torch.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace troupe::engine {

void keep_freed_host_memory() {
  if (const char* off = std::getenv("TROUPE_SYSTEM_ALLOCATOR"); off && *off && std::string(off) != "0") return;
#if defined(__GLIBC__)
  mallopt(M_MMAP_MAX, 0);             // large blocks from the heap, reusable once freed
  mallopt(M_TRIM_THRESHOLD, INT_MAX);  // keep the heap's free top instead of unmapping it
#endif
}

void return_large_blocks_when_freed() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 1 << 20);  // a fixed threshold: glibc no longer raises it
#endif
}

void return_freed_host_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

torch::Tensor empty_in_huge_pages(int64_t numel, const torch::TensorOptions& options) {
  constexpr int64_t kHugePage = int64_t{2} << 20;
  const int64_t bytes = numel * static_cast<int64_t>(c10::elementSize(c10::typeMetaToScalarType(options.dtype())));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (options.device().is_cpu() && bytes >= 2 * kHugePage) {
    const auto rounded = static_cast<size_t>((bytes + kHugePage - 1) / kHugePage * kHugePage);
    void* memory = std::aligned_alloc(static_cast<size_t>(kHugePage), rounded);
    if (memory) {
      madvise(memory, rounded, MADV_HUGEPAGE);  // advice: without THP the pages stay 4 KiB
      return torch::from_blob(memory, {numel}, [](void* p) { std::free(p); }, options.requires_grad(false));
    }
  }
#endif
  return torch::empty({numel}, options);
}

}  // namespace troupe::engine
