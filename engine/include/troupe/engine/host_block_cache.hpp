#pragma once
/// A caching allocator for large host tensors, as PyTorch's CUDA caching allocator is for
/// device memory.
///
/// A step-3 cycle allocates the same large tensors every iteration (the tied embedding's
/// gradient and its accumulation, autocast copies of the weights, logits). glibc's
/// malloc maps each block over its mmap threshold afresh and unmaps it when freed, so the
/// kernel zeroes and faults in every page again each time: 17% of a bf16 OPT-125m step-3
/// iteration on a 2-core VM was `clear_page`. Keeping freed large blocks and handing them
/// back for a request of the same size removes that. Unlike keep_freed_host_memory()
/// (host_memory.hpp), which keeps everything in one heap and fragments it, the cache
/// holds whole blocks by size and frees the oldest once it holds more than its cap, so
/// the cost in peak memory is at most the cap.
#include <cstdint>

namespace troupe::engine {

struct HostBlockCacheStats {
  int64_t hits = 0;          ///< large allocations served from the cache
  int64_t misses = 0;        ///< large allocations that went to the system
  int64_t cached_bytes = 0;  ///< freed blocks held now
  int64_t max_cached_bytes = 0;
};

/// Makes LibTorch's CPU allocator cache freed blocks of at least 1 MiB, up to
/// `max_cached_bytes` in all, for the rest of the process (a second call only changes the
/// cap). Smaller blocks go to the default allocator as before. TROUPE_SYSTEM_ALLOCATOR=1
/// in the environment turns it off. Returns whether the cache is in use.
bool use_host_block_cache(int64_t max_cached_bytes);

/// Counters since use_host_block_cache() (all zero when it is not in use).
HostBlockCacheStats host_block_cache_stats();

/// Frees every cached block (e.g. before a phase with other shapes and a higher peak).
void release_host_block_cache();

}  // namespace troupe::engine
