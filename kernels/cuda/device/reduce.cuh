#pragma once
// Warp and block reductions for the CUDA kernels (xor butterflies: every lane ends with
// the result).
#include <cmath>

namespace troupe::kernels::cuda::device {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

/// Sum over the block; `scratch` holds one float per warp (32 is enough). Every thread
/// gets the result. Starts with a barrier so `scratch` may be reused call after call.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

/// An argmax candidate: torch.argmax's order (NaN above everything, then the larger
/// value, ties to the smaller index).
struct ArgMax {
  float value;
  long long index;
};

__device__ __forceinline__ bool arg_better(const ArgMax& a, const ArgMax& b) {
  const bool an = isnan(a.value), bn = isnan(b.value);
  if (an != bn) return an;
  if (!an && a.value != b.value) return a.value > b.value;
  return a.index < b.index;
}

__device__ __forceinline__ ArgMax warp_argmax(ArgMax a) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    ArgMax b;
    b.value = __shfl_xor_sync(kFullMask, a.value, o);
    b.index = __shfl_xor_sync(kFullMask, a.index, o);
    if (arg_better(b, a)) a = b;
  }
  return a;
}

/// Argmax over the block; `scratch` holds one ArgMax per warp. Every thread gets it.
__device__ __forceinline__ ArgMax block_argmax(ArgMax a, ArgMax* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  a = warp_argmax(a);
  __syncthreads();
  if (lane == 0) scratch[warp] = a;
  __syncthreads();
  a = lane < warps ? scratch[lane] : ArgMax{-INFINITY, 0x7fffffffffffffffLL};
  return warp_argmax(a);
}

}  // namespace troupe::kernels::cuda::device
