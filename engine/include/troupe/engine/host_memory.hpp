#pragma once
#include <cstdint>

#include <torch/types.h>
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

/// From now on every block of 1 MiB or more is mapped on its own and unmapped as soon
/// as it is freed (glibc's M_MMAP_THRESHOLD fixed at 1 MiB; a no-op elsewhere), so the
/// process holds what its live tensors need. glibc's default raises the threshold to
/// the largest block freed so far (up to 32 MiB); after that, blocks a data-parallel rank
/// frees every layer (a gathered layer's gradients, its reduce buffers) come from the
/// heap, where they end up between blocks that live on (the gradient chunks) and are
/// never handed back: a ZeRO-3 rank of four training OPT-350m's shape peaked at 2.74 GiB
/// that way, at 1.77 GiB with this. The cost is a page fault per page of each such
/// block at every allocation. Steps 1 and 2 call it on ranks that partition (ZeRO 1-3).
void return_large_blocks_when_freed();

/// Hands the pages of freed heap blocks back to the system now (glibc's malloc_trim;
/// a no-op elsewhere). Under glibc's defaults a freed block below the mmap threshold
/// (which rises to 32 MiB after the first large frees) stays resident in its thread's
/// arena until something is allocated there again; after a phase that freed much (the
/// Hybrid Engine's generation weights and KV cache) that memory would count in every
/// later phase's peak.
void return_freed_host_memory();

/// An uninitialised CPU tensor of `numel` elements whose pages the kernel backs with
/// 2 MiB huge pages (madvise MADV_HUGEPAGE) when it is at least 4 MiB: for buffers made
/// afresh and filled at once, over and over (a ZeRO-3 layer's gathered weights, the
/// Hybrid Engine's resharded ones), where faulting in 4 KiB pages costs more than the
/// copy that fills them (a reshard of OPT-1.3B's layers over 4 ranks: 7x a memcpy of
/// its bytes, 3.7x with huge pages). Smaller buffers, other devices, and systems without
/// the advice get torch::empty.
torch::Tensor empty_in_huge_pages(int64_t numel, const torch::TensorOptions& options);

}  // namespace troupe::engine
