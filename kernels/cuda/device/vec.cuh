#pragma once
// Device helpers shared by the CUDA kernels: element conversions to fp32 and 16-byte
// vector loads. Kernels read memory through these so every op widens bf16 the same way
// (a bf16 is the high half of an fp32: widening is a shift, exact).
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace troupe::kernels::cuda::device {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

/// The two bf16 packed in a 32-bit word, low half first, as fp32.
__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

/// Elements of T in 16 bytes.
template <typename T>
constexpr int kVec16 = 16 / sizeof(T);

/// 16 bytes at p (16-byte aligned) widened to fp32: 4 floats, or 8 bf16 / fp16.
template <typename T>
__device__ __forceinline__ void load16(const T* p, float (&out)[kVec16<T>]);

template <>
__device__ __forceinline__ void load16<float>(const float* p, float (&out)[4]) {
  const float4 v = __ldg(reinterpret_cast<const float4*>(p));
  out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
}
template <>
__device__ __forceinline__ void load16<__nv_bfloat16>(const __nv_bfloat16* p, float (&out)[8]) {
  const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
  out[0] = bf16_lo(v.x), out[1] = bf16_hi(v.x), out[2] = bf16_lo(v.y), out[3] = bf16_hi(v.y);
  out[4] = bf16_lo(v.z), out[5] = bf16_hi(v.z), out[6] = bf16_lo(v.w), out[7] = bf16_hi(v.w);
}
template <>
__device__ __forceinline__ void load16<__half>(const __half* p, float (&out)[8]) {
  const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
    out[2 * i] = f.x, out[2 * i + 1] = f.y;
  }
}

/// Elements before `p` reaches a 16-byte boundary (p must be aligned to sizeof(T)).
template <typename T>
__device__ __forceinline__ int64_t head_to_aligned16(const T* p) {
  const auto mis = reinterpret_cast<uintptr_t>(p) & 15u;
  return mis == 0 ? 0 : static_cast<int64_t>((16u - mis) / sizeof(T));
}

}  // namespace troupe::kernels::cuda::device
