#pragma once
// Raw CUDA launchers of the decode linear (no LibTorch): y = act(x W^T + b) for a few
// rows of x, and Llama's gated y = silu(x G^T) * (x U^T).
//   x (M, K) row-major, in the weight's dtype     w, g, u (N, K) row-major
//   bias (N) fp32 or null                         y (M, N) fp32, row stride ldy
// Sums are fp32. Any M, N, K (K = 0 gives act(bias)); 16-byte weight loads when K
// allows them, element loads otherwise.
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace troupe::kernels::cuda {

/// The epilogue's activation; the same values as kernels::Activation.
enum class Act : int { None = 0, Relu, Gelu, GeluTanh, Silu };

void decode_linear_f32(const float* x, const float* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k,
                       int64_t ldy, Act act, cudaStream_t stream);
void decode_linear_bf16(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, float* y, int64_t m,
                        int64_t n, int64_t k, int64_t ldy, Act act, cudaStream_t stream);

void decode_gated_f32(const float* x, const float* g, const float* u, float* y, int64_t m, int64_t n, int64_t k,
                      int64_t ldy, cudaStream_t stream);
void decode_gated_bf16(const __nv_bfloat16* x, const __nv_bfloat16* g, const __nv_bfloat16* u, float* y, int64_t m,
                       int64_t n, int64_t k, int64_t ldy, cudaStream_t stream);

}  // namespace troupe::kernels::cuda
