// Decode linear as a GEMV: each warp owns R output features (weight rows) and streams
// them along K in 16-byte loads, each load feeding the M rows of x, which every warp of
// the block reads from shared memory (x is staged there once per K tile, in fp32).
// Lanes hold partial sums over their slice of K; one butterfly per (feature, row) at
// the end. Decode is bandwidth-bound for small M: the weight is read exactly once.
#include "cuda/decode_linear.cuh"

#include <algorithm>

#include "cuda/device/reduce.cuh"
#include "cuda/device/vec.cuh"

namespace troupe::kernels::cuda {
namespace {

using device::kVec16;
using device::to_float;

constexpr int kWarps = 4;  // the element-load kernel's block
constexpr int kThreads = kWarps * 32;
/// The x tile: 48 KB of fp32 (no opt-in needed), 4 blocks an SM.
constexpr int kTileFloats = 12288;

__device__ __forceinline__ float apply_act(Act act, float v) {
  switch (act) {
    case Act::None: return v;
    case Act::Relu: return v > 0.f ? v : 0.f;
    case Act::Gelu: return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    case Act::GeluTanh: {
      const float inner = 0.7978845608028654f * (v + 0.044715f * v * v * v);
      return 0.5f * v * (1.f + tanhf(inner));
    }
    case Act::Silu: return v / (1.f + expf(-v));
  }
  return v;
}

/// MT: rows of x per block (a power of two >= the rows it gets, <= 32); R: weight rows
/// per warp; WARPS a block; GATED: a second weight u, output silu(x w^T) * (x u^T).
template <typename T, int MT, int R, int WARPS, bool GATED>
__global__ void __launch_bounds__(WARPS * 32)
    decode_linear_kernel(const T* __restrict__ x,      // (M, K)
                         const T* __restrict__ w,      // (N, K)
                         const T* __restrict__ u,      // (N, K) when GATED
                         const float* __restrict__ bias,  // (N) or null
                         float* __restrict__ y,        // (M, N), row stride ldy
                         int m_total, int64_t n, int64_t k, int64_t ldy, int kt_max, Act act) {
  constexpr int V = kVec16<T>;
  constexpr int RU = GATED ? R : 1;
  extern __shared__ float4 smem4[];
  float* xs = reinterpret_cast<float*>(smem4);  // (MT, kt_max)

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * MT;
  const int mt = static_cast<int>(min(static_cast<int64_t>(MT), m_total - m0));
  x += m0 * k;
  y += m0 * ldy;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * WARPS + warp) * R;

  float acc[R][MT];
  float accu[RU][MT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int i = 0; i < MT; ++i) acc[r][i] = 0.f;
#pragma unroll
  for (int r = 0; r < RU; ++r)
#pragma unroll
    for (int i = 0; i < MT; ++i) accu[r][i] = 0.f;

  for (int64_t k0 = 0; k0 < k; k0 += kt_max) {
    const int kt = static_cast<int>(min(static_cast<int64_t>(kt_max), k - k0));
    __syncthreads();  // the previous tile is read by every warp
#pragma unroll
    for (int i = 0; i < MT; ++i)
      for (int kk = threadIdx.x; kk < kt; kk += WARPS * 32)
        xs[i * kt_max + kk] = i < mt ? to_float(x[i * k + k0 + kk]) : 0.f;
    __syncthreads();

    // kt is a multiple of V (k is, and so is kt_max): no partial vectors. Small M does
    // little per load: two steps at once keep twice the loads in flight.
    constexpr int kUnroll = MT <= 4 ? 2 : 1;
#pragma unroll kUnroll
    for (int kk = lane * V; kk < kt; kk += 32 * V) {
      float wv[R][V];
      float uv[RU][V];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int64_t row = row0 + r;
        if (row < n) {
          device::load16<T>(w + row * k + k0 + kk, wv[r]);
          if constexpr (GATED) device::load16<T>(u + row * k + k0 + kk, uv[r]);
        } else {
#pragma unroll
          for (int j = 0; j < V; ++j) {
            wv[r][j] = 0.f;
            if constexpr (GATED) uv[r][j] = 0.f;
          }
        }
      }
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        float xv[V];
#pragma unroll
        for (int j = 0; j < V; j += 4) {
          const float4 q = *reinterpret_cast<const float4*>(xs + i * kt_max + kk + j);
          xv[j] = q.x, xv[j + 1] = q.y, xv[j + 2] = q.z, xv[j + 3] = q.w;
        }
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int j = 0; j < V; ++j) {
            acc[r][i] = fmaf(wv[r][j], xv[j], acc[r][i]);
            if constexpr (GATED) accu[r][i] = fmaf(uv[r][j], xv[j], accu[r][i]);
          }
      }
    }
  }

  // Sum the lanes' slices; lane i writes row i of x's output for feature `row`.
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t row = row0 + r;
#pragma unroll
    for (int i = 0; i < MT; ++i) {
      const float s = device::warp_sum(acc[r][i]);
      float out;
      if constexpr (GATED) {
        const float su = device::warp_sum(accu[r][i]);
        out = apply_act(Act::Silu, s) * su;
      } else {
        out = row < n ? apply_act(act, s + (bias ? bias[row] : 0.f)) : 0.f;
      }
      if (lane == i && i < mt && row < n) y[i * ldy + row] = out;
    }
  }
}

/// Element loads, for weights whose rows are not on 16-byte boundaries (K not a
/// multiple of the vector): a warp per feature, the rows of x one after another
/// (the weight row is re-read from L1). Rare (odd K), so kept simple.
template <typename T, bool GATED>
__global__ void __launch_bounds__(kThreads)
    decode_linear_rowwise_kernel(const T* __restrict__ x,       // (M, K)
                                 const T* __restrict__ w,       // (N, K)
                                 const T* __restrict__ u,       // (N, K) when GATED
                                 const float* __restrict__ bias,  // (N) or null
                                 float* __restrict__ y,         // (M, N), row stride ldy
                                 int64_t m, int64_t n, int64_t k, int64_t ldy, Act act) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= n) return;  // the whole warp: no shuffles are left half-joined
  const T* wr = w + row * k;
  const T* ur = GATED ? u + row * k : nullptr;
  for (int64_t i = 0; i < m; ++i) {
    float s = 0.f, su = 0.f;
    for (int64_t kk = lane; kk < k; kk += 32) {
      const float xv = to_float(x[i * k + kk]);
      s = fmaf(to_float(wr[kk]), xv, s);
      if constexpr (GATED) su = fmaf(to_float(ur[kk]), xv, su);
    }
    s = device::warp_sum(s);
    if constexpr (GATED) su = device::warp_sum(su);
    if (lane == 0)
      y[i * ldy + row] = GATED ? apply_act(Act::Silu, s) * su : apply_act(act, s + (bias ? bias[row] : 0.f));
  }
}

/// Weight rows per warp: enough loads in flight for small M, registers bounded for
/// large M (R * MT accumulators, twice that gated).
template <int MT, bool GATED>
constexpr int rows_per_warp() {
  constexpr int r = MT <= 8 ? 4 : 2;
  return GATED ? r / 2 : r;
}

/// Warps a block: every block stages all of x (from L2), so large M wants more weight
/// rows a block to share each staged tile; small M wants more blocks.
template <int MT>
constexpr int warps_per_block() {
  return MT >= 16 ? 8 : 4;
}

template <typename T, int MT, bool GATED>
void launch_mt(const T* x, const T* w, const T* u, const float* bias, float* y, int64_t m, int64_t n, int64_t k,
               int64_t ldy, Act act, cudaStream_t stream) {
  constexpr int V = kVec16<T>;
  constexpr int R = rows_per_warp<MT, GATED>();
  constexpr int W = warps_per_block<MT>();
  // The K tile: as much of x as 48 KB holds, in whole warp strides when there is room.
  int kt_max = kTileFloats / MT;
  if (kt_max >= 32 * V) kt_max = kt_max / (32 * V) * (32 * V);
  const int64_t k_rounded = (k + V - 1) / V * V;
  kt_max = static_cast<int>(std::max<int64_t>(V, std::min<int64_t>(kt_max, k_rounded)));
  const size_t smem = static_cast<size_t>(MT) * kt_max * sizeof(float);
  const dim3 grid(static_cast<unsigned>((n + W * R - 1) / (W * R)), static_cast<unsigned>((m + MT - 1) / MT));
  decode_linear_kernel<T, MT, R, W, GATED>
      <<<grid, W * 32, smem, stream>>>(x, w, u, bias, y, static_cast<int>(m), n, k, ldy, kt_max, act);
}

template <typename T, bool GATED>
void launch_vec(const T* x, const T* w, const T* u, const float* bias, float* y, int64_t m, int64_t n, int64_t k,
                int64_t ldy, Act act, cudaStream_t stream) {
  const int64_t rows = std::min<int64_t>(m, 32);
  if (rows <= 1) return launch_mt<T, 1, GATED>(x, w, u, bias, y, m, n, k, ldy, act, stream);
  if (rows <= 2) return launch_mt<T, 2, GATED>(x, w, u, bias, y, m, n, k, ldy, act, stream);
  if (rows <= 4) return launch_mt<T, 4, GATED>(x, w, u, bias, y, m, n, k, ldy, act, stream);
  if (rows <= 8) return launch_mt<T, 8, GATED>(x, w, u, bias, y, m, n, k, ldy, act, stream);
  if (rows <= 16) return launch_mt<T, 16, GATED>(x, w, u, bias, y, m, n, k, ldy, act, stream);
  return launch_mt<T, 32, GATED>(x, w, u, bias, y, m, n, k, ldy, act, stream);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <typename T, bool GATED>
void launch(const T* x, const T* w, const T* u, const float* bias, float* y, int64_t m, int64_t n, int64_t k,
            int64_t ldy, Act act, cudaStream_t stream) {
  if (m == 0 || n == 0) return;
  // 16-byte loads need every weight row on a 16-byte boundary.
  const bool vec = k % kVec16<T> == 0 && aligned16(w) && (!GATED || aligned16(u));
  if (vec) return launch_vec<T, GATED>(x, w, u, bias, y, m, n, k, ldy, act, stream);
  const dim3 grid(static_cast<unsigned>((n + kWarps - 1) / kWarps));
  decode_linear_rowwise_kernel<T, GATED><<<grid, kThreads, 0, stream>>>(x, w, u, bias, y, m, n, k, ldy, act);
}

}  // namespace

void decode_linear_f32(const float* x, const float* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k,
                       int64_t ldy, Act act, cudaStream_t stream) {
  launch<float, false>(x, w, nullptr, bias, y, m, n, k, ldy, act, stream);
}

void decode_linear_bf16(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, float* y, int64_t m,
                        int64_t n, int64_t k, int64_t ldy, Act act, cudaStream_t stream) {
  launch<__nv_bfloat16, false>(x, w, nullptr, bias, y, m, n, k, ldy, act, stream);
}

void decode_gated_f32(const float* x, const float* g, const float* u, float* y, int64_t m, int64_t n, int64_t k,
                      int64_t ldy, cudaStream_t stream) {
  launch<float, true>(x, g, u, nullptr, y, m, n, k, ldy, Act::None, stream);
}

void decode_gated_bf16(const __nv_bfloat16* x, const __nv_bfloat16* g, const __nv_bfloat16* u, float* y, int64_t m,
                       int64_t n, int64_t k, int64_t ldy, cudaStream_t stream) {
  launch<__nv_bfloat16, true>(x, g, u, nullptr, y, m, n, k, ldy, Act::None, stream);
}

}  // namespace troupe::kernels::cuda
