#pragma once
// A block's walk over one row of n elements: the elements before the first 16-byte
// boundary, then 16-byte vectors, then the rest, each thread taking every blockDim-th
// piece. `f(index, value)` sees every element once, in fp32; the order within a thread
// is not the index order.
#include <cstdint>

#include "cuda/device/vec.cuh"

namespace troupe::kernels::cuda::device {

template <typename T, typename F>
__device__ __forceinline__ void visit_row(const T* __restrict__ row, int64_t n, F&& f) {
  constexpr int V = kVec16<T>;
  const int64_t head = min(n, head_to_aligned16(row));
  for (int64_t i = threadIdx.x; i < head; i += blockDim.x) f(i, to_float(row[i]));
  const int64_t nvec = (n - head) / V;
  const T* body = row + head;
  for (int64_t j = threadIdx.x; j < nvec; j += blockDim.x) {
    float v[V];
    load16<T>(body + j * V, v);
#pragma unroll
    for (int e = 0; e < V; ++e) f(head + j * V + e, v[e]);
  }
  for (int64_t i = head + nvec * V + threadIdx.x; i < n; i += blockDim.x) f(i, to_float(row[i]));
}

}  // namespace troupe::kernels::cuda::device
