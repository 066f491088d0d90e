#pragma once
/// How the process hands host memory back: a training step allocates and frees the same
/// large tensors every step (the tied embedding's gradient, the logits, autocast copies),
/// and glibc's malloc maps each block over 32 MiB afresh and unmaps it when freed, so
/// every step faults all of those pages in again (a quarter to a third of an OPT-125m
/// SFT step on a 2-core VM).
namespace troupe::engine {

/// From now on freed host memory stays with the process for reuse: no mmap for large
/// blocks and no trimming of the heap's top below 2 GiB free (glibc's M_MMAP_MAX,
/// M_TRIM_THRESHOLD; a no-op elsewhere). Memory the process frees is then reused by
/// later allocations instead of returned to the system, so peak RSS stays about the
/// same while a steady loop of fixed shapes runs (measured +1-3%). Steps 1 and 2 call
/// it; step 3 does not (its phases allocate many sizes: a 1.3B LoRA cycle peaked 1.6 GiB
/// higher with it, for 12% less time). TROUPE_SYSTEM_ALLOCATOR=1 in the environment
/// leaves glibc's defaults.
void keep_freed_host_memory();

/// Hands the pages of freed heap blocks back to the system now (glibc's malloc_trim;
/// a no-op elsewhere). Under glibc's defaults a freed block below the mmap threshold
/// (which rises to 32 MiB after the first large frees) stays resident in its thread's
/// arena until something is allocated there again; after a phase that freed much (the
/// Hybrid Engine's generation weights and KV cache) that memory would count in every
/// later phase's peak.
void return_freed_host_memory();

}  // namespace troupe::engine
