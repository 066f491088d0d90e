#include <troupe/engine/host_memory.hpp>

#include <climits>
#include <cstdlib>
#include <string>

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

}  // namespace troupe::engine
