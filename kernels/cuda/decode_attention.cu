// Decode attention, flash-decoding style. A block takes one (row, KV head) and the
// query heads that share it (GQA: K and V are read once for all of them), over one
// split of the positions:
//   1. scores q.k for the split, lanes in groups of LP across D (each group one
//      position, 16-byte loads), the group's lanes summed by butterflies, into smem;
//   2. each head's max and exp-sum over the split (one warp a head);
//   3. the exp-weighted sum of V rows, again a position per lane group, summed over
//      groups and warps in a fixed order (no atomics: the same bits every run).
// One split writes the output; several write partial (max, sum, acc) that a second
// kernel merges. Splits exist to fill the GPU when B * H_kv is small.
#include "cuda/decode_attention.cuh"

#include <algorithm>

#include "cuda/device/reduce.cuh"
#include "cuda/device/vec.cuh"

namespace troupe::kernels::cuda {
namespace {

using device::kVec16;
using device::to_float;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kUnroll = 4;  // positions per lane group per step: loads in flight
constexpr int64_t kMinSplitLen = 64;
constexpr int64_t kMaxSplitLen = 1024;  // scores of 8 heads: 32 KB of smem

struct Plan {
  int gt = 1;           // query heads a block takes (template GT: 1, 2, 4 or 8)
  int g_chunks = 1;     // blocks over one KV head's query heads
  bool vec = false;     // 16-byte K/V loads
  int vecs = 0;         // loads across D: D / V, or D for element loads
  int lanes = 1;        // LP, lanes per position: a power of two <= 32
  int64_t split_len = 0;
  int64_t splits = 0;
};

template <typename KV, bool VEC>
constexpr int kV = VEC ? kVec16<KV> : 1;

template <typename KV, bool VEC>
__device__ __forceinline__ void load_kv(const KV* p, float (&out)[kV<KV, VEC>]) {
  if constexpr (VEC) {
    device::load16<KV>(p, out);
  } else {
    out[0] = to_float(p[0]);
  }
}

__device__ __forceinline__ float load_q(const DecodeAttentionArgs& a, int64_t i) {
  return a.q_dtype == FloatDType::BF16 ? to_float(static_cast<const __nv_bfloat16*>(a.q)[i])
                                      : static_cast<const float*>(a.q)[i];
}

__device__ __forceinline__ void store_out(const DecodeAttentionArgs& a, int64_t i, float v) {
  if (a.q_dtype == FloatDType::BF16)
    static_cast<__nv_bfloat16*>(a.out)[i] = __float2bfloat16_rn(v);
  else
    static_cast<float*>(a.out)[i] = v;
}

/// Whether row b may attend position s: the mask says so, or s is the newest.
__device__ __forceinline__ bool allowed(const DecodeAttentionArgs& a, int64_t b, int64_t s) {
  if (s == a.length - 1) return true;
  const int64_t i = b * a.mask_stride_b + s;
  switch (a.mask_dtype) {
    case MaskDType::None: return true;
    case MaskDType::U8: return static_cast<const uint8_t*>(a.key_mask)[i] != 0;
    case MaskDType::I32: return static_cast<const int32_t*>(a.key_mask)[i] != 0;
    case MaskDType::I64: return static_cast<const int64_t*>(a.key_mask)[i] != 0;
  }
  return true;
}

/// GT query heads, NV loads per lane across D (the template's register arrays).
template <typename KV, int GT, bool VEC, int NV>
__global__ void __launch_bounds__(kThreads)
    decode_attention_kernel(const DecodeAttentionArgs a, const Plan p, float* __restrict__ ws) {
  constexpr int V = kV<KV, VEC>;
  constexpr unsigned kFull = device::kFullMask;
  extern __shared__ float4 smem4[];
  float* stat_m = reinterpret_cast<float*>(smem4);  // (GT) max score of the split
  float* stat_l = stat_m + GT;                       // (GT) sum of exp(score - max)
  float* sc = stat_l + GT;                           // (GT, split_len) scores, then exp(score - max)
  float* red = sc;                                   // (kWarps, GT, D) once sc is spent

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int lp = p.lanes, per_warp = 32 / lp, grp = lane / lp, lg = lane % lp;
  const int slots = kWarps * per_warp;  // positions the block covers per step
  const int d_total = static_cast<int>(a.head_dim);
  const int64_t heads = a.heads;

  int64_t bid = blockIdx.x;
  const int gc = static_cast<int>(bid % p.g_chunks);
  bid /= p.g_chunks;
  const int64_t hk = bid % a.kv_heads;
  const int64_t b = bid / a.kv_heads;
  const int group = static_cast<int>(heads / a.kv_heads);
  const int gt = min(GT, group - gc * GT);
  const int64_t h0 = hk * group + static_cast<int64_t>(gc) * GT;  // first query head here
  const int sp = blockIdx.y;
  const int64_t s_begin = sp * p.split_len;
  const int64_t s_end = min(a.length, s_begin + p.split_len);
  const int len = static_cast<int>(s_end - s_begin);
  const KV* kb = static_cast<const KV*>(a.k) + b * a.k_stride_b + hk * a.k_stride_h;
  const KV* vb = static_cast<const KV*>(a.v) + b * a.v_stride_b + hk * a.v_stride_h;

  // This lane's slice of each head's query, scaled.  qr[g][j][e] = q[h0+g][(lg + j LP) V + e]
  float qr[GT][NV][V];
#pragma unroll
  for (int g = 0; g < GT; ++g)
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      const int vi = lg + j * lp;
#pragma unroll
      for (int e = 0; e < V; ++e)
        qr[g][j][e] = (g < gt && vi < p.vecs) ? load_q(a, ((b * heads + h0 + g) * d_total) + vi * V + e) * a.scale : 0.f;
    }

  // 1. Scores. `base` is warp-uniform, so every lane joins every butterfly.
  for (int64_t base = s_begin + warp * per_warp; base < s_end; base += static_cast<int64_t>(slots) * kUnroll) {
    float kv[kUnroll][NV][V];
    bool ok[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t s = base + grp + static_cast<int64_t>(u) * slots;
      ok[u] = s < s_end && allowed(a, b, s);
#pragma unroll
      for (int j = 0; j < NV; ++j) {
        const int vi = lg + j * lp;
        if (ok[u] && vi < p.vecs) {
          load_kv<KV, VEC>(kb + s * a.k_stride_s + vi * V, kv[u][j]);
        } else {
#pragma unroll
          for (int e = 0; e < V; ++e) kv[u][j][e] = 0.f;
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float dot[GT];
#pragma unroll
      for (int g = 0; g < GT; ++g) {
        dot[g] = 0.f;
#pragma unroll
        for (int j = 0; j < NV; ++j)
#pragma unroll
          for (int e = 0; e < V; ++e) dot[g] = fmaf(kv[u][j][e], qr[g][j][e], dot[g]);
        for (int o = lp >> 1; o > 0; o >>= 1) dot[g] += __shfl_xor_sync(kFull, dot[g], o);
      }
      const int64_t s = base + grp + static_cast<int64_t>(u) * slots;
      if (lg == 0 && s < s_end) {
#pragma unroll
        for (int g = 0; g < GT; ++g)
          if (g < gt) sc[g * p.split_len + (s - s_begin)] = ok[u] ? dot[g] : -INFINITY;
      }
    }
  }
  __syncthreads();

  // 2. Per head: max and exp-sum over the split. A split with every position masked
  // has max -inf: its weights are 0 (not exp(-inf - -inf) = NaN), and it merges as 0.
  for (int g = warp; g < gt; g += kWarps) {
    float* row = sc + g * p.split_len;
    float mx = -INFINITY;
    for (int i = lane; i < len; i += 32) mx = fmaxf(mx, row[i]);
    mx = device::warp_max(mx);
    float l = 0.f;
    for (int i = lane; i < len; i += 32) {
      const float e = mx == -INFINITY ? 0.f : expf(row[i] - mx);
      row[i] = e;
      l += e;
    }
    l = device::warp_sum(l);
    if (lane == 0) stat_m[g] = mx, stat_l[g] = l;
  }
  __syncthreads();

  // 3. acc[g][d] = sum_s w[g][s] v[s][d]; positions whose weights are all 0 (masked)
  // are not read.
  float acc[GT][NV][V];
#pragma unroll
  for (int g = 0; g < GT; ++g)
#pragma unroll
    for (int j = 0; j < NV; ++j)
#pragma unroll
      for (int e = 0; e < V; ++e) acc[g][j][e] = 0.f;
  for (int64_t base = s_begin + warp * per_warp; base < s_end; base += static_cast<int64_t>(slots) * kUnroll) {
    float vv[kUnroll][NV][V];
    float w[kUnroll][GT];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t s = base + grp + static_cast<int64_t>(u) * slots;
      bool any = false;
#pragma unroll
      for (int g = 0; g < GT; ++g) {
        w[u][g] = (s < s_end && g < gt) ? sc[g * p.split_len + (s - s_begin)] : 0.f;
        any |= w[u][g] != 0.f;
      }
#pragma unroll
      for (int j = 0; j < NV; ++j) {
        const int vi = lg + j * lp;
        if (any && vi < p.vecs) {
          load_kv<KV, VEC>(vb + s * a.v_stride_s + vi * V, vv[u][j]);
        } else {
#pragma unroll
          for (int e = 0; e < V; ++e) vv[u][j][e] = 0.f;
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int g = 0; g < GT; ++g)
#pragma unroll
        for (int j = 0; j < NV; ++j)
#pragma unroll
          for (int e = 0; e < V; ++e) acc[g][j][e] = fmaf(w[u][g], vv[u][j][e], acc[g][j][e]);
  }
  // Sum the lane groups of the warp (same lg, other positions).
#pragma unroll
  for (int g = 0; g < GT; ++g)
#pragma unroll
    for (int j = 0; j < NV; ++j)
#pragma unroll
      for (int e = 0; e < V; ++e)
        for (int o = lp; o < 32; o <<= 1) acc[g][j][e] += __shfl_xor_sync(kFull, acc[g][j][e], o);
  __syncthreads();  // every warp has read sc: red may overwrite it
  if (grp == 0) {
#pragma unroll
    for (int g = 0; g < GT; ++g)
#pragma unroll
      for (int j = 0; j < NV; ++j) {
        const int vi = lg + j * lp;
        if (g < gt && vi < p.vecs) {
#pragma unroll
          for (int e = 0; e < V; ++e) red[(warp * GT + g) * d_total + vi * V + e] = acc[g][j][e];
        }
      }
  }
  __syncthreads();

  // Sum the warps in a fixed order; write the output or this split's partials.
  for (int i = threadIdx.x; i < gt * d_total; i += kThreads) {
    const int g = i / d_total, d = i - g * d_total;
    float o = 0.f;
#pragma unroll
    for (int wi = 0; wi < kWarps; ++wi) o += red[(wi * GT + g) * d_total + d];
    const int64_t bh = b * heads + h0 + g;
    if (p.splits == 1) {
      store_out(a, bh * d_total + d, o / stat_l[g]);
    } else {
      const int64_t part = bh * p.splits + sp;
      ws[part * d_total + d] = o;
      if (d == 0) {
        const int64_t n_parts = a.batch * heads * p.splits;
        ws[n_parts * d_total + part] = stat_m[g];
        ws[n_parts * d_total + n_parts + part] = stat_l[g];
      }
    }
  }
}

/// Merges the splits of one (row, head): out = sum_i acc_i e^(m_i - M) / sum_i l_i e^(m_i - M).
__global__ void __launch_bounds__(kThreads)
    decode_attention_merge_kernel(const DecodeAttentionArgs a, const float* __restrict__ ws, int64_t splits) {
  extern __shared__ float4 smem4[];
  float* weight = reinterpret_cast<float*>(smem4);  // (splits) e^(m_i - M)
  __shared__ float scratch[32];
  const int d_total = static_cast<int>(a.head_dim);
  const int64_t bh = blockIdx.x;
  const int64_t n_parts = a.batch * a.heads * splits;
  const float* acc = ws + bh * splits * d_total;        // (splits, D)
  const float* ms = ws + n_parts * d_total + bh * splits;  // (splits)
  const float* ls = ms + n_parts;                          // (splits)

  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < splits; i += kThreads) mx = fmaxf(mx, ms[i]);
  mx = device::block_max(mx, scratch);  // finite: the newest position's split
  float l = 0.f;
  for (int64_t i = threadIdx.x; i < splits; i += kThreads) {
    const float w = ms[i] == -INFINITY ? 0.f : expf(ms[i] - mx);
    weight[i] = w;
    l += w * ls[i];
  }
  l = device::block_sum(l, scratch);  // its barriers publish `weight` too
  for (int d = threadIdx.x; d < d_total; d += kThreads) {
    float o = 0.f;
    for (int64_t i = 0; i < splits; ++i) o = fmaf(weight[i], acc[i * d_total + d], o);
    store_out(a, bh * d_total + d, o / l);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

int sm_count() {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    return 132;  // an H100's; only the split heuristic reads it
  return sms;
}

Plan make_plan(const DecodeAttentionArgs& a) {
  Plan p;
  const int64_t group = a.heads / a.kv_heads;
  p.gt = group >= 5 ? 8 : group >= 3 ? 4 : static_cast<int>(group);
  p.g_chunks = static_cast<int>((group + p.gt - 1) / p.gt);
  const int v = a.kv_dtype == FloatDType::BF16 ? 8 : 4;
  p.vec = a.head_dim % v == 0 && aligned16(a.k) && aligned16(a.v) && a.k_stride_b % v == 0 &&
          a.k_stride_h % v == 0 && a.k_stride_s % v == 0 && a.v_stride_b % v == 0 && a.v_stride_h % v == 0 &&
          a.v_stride_s % v == 0;
  p.vecs = static_cast<int>(p.vec ? a.head_dim / v : a.head_dim);
  p.lanes = 1;
  while (p.lanes < 32 && p.lanes < p.vecs) p.lanes <<= 1;
  // Enough blocks for two a multiprocessor, in splits of 64 to 1024 positions.
  const int64_t blocks = a.batch * a.kv_heads * p.g_chunks;
  const int64_t want = std::max<int64_t>(1, (2 * sm_count() + blocks - 1) / std::max<int64_t>(blocks, 1));
  int64_t split_len = (a.length + want - 1) / want;
  split_len = (split_len + kMinSplitLen - 1) / kMinSplitLen * kMinSplitLen;
  split_len = std::min(kMaxSplitLen, std::max(kMinSplitLen, split_len));
  p.split_len = split_len;
  p.splits = (a.length + split_len - 1) / split_len;
  return p;
}

template <typename KV, int GT, bool VEC, int NV>
void launch_kernel(const DecodeAttentionArgs& a, const Plan& p, float* ws, cudaStream_t stream) {
  const int64_t area = std::max<int64_t>(GT * p.split_len, static_cast<int64_t>(kWarps) * GT * a.head_dim);
  const size_t smem = static_cast<size_t>(2 * GT + area) * sizeof(float);
  const dim3 grid(static_cast<unsigned>(a.batch * a.kv_heads * p.g_chunks), static_cast<unsigned>(p.splits));
  decode_attention_kernel<KV, GT, VEC, NV><<<grid, kThreads, smem, stream>>>(a, p, ws);
}

template <typename KV, bool VEC, int NV>
void launch_gt(const DecodeAttentionArgs& a, const Plan& p, float* ws, cudaStream_t stream) {
  switch (p.gt) {
    case 1: return launch_kernel<KV, 1, VEC, NV>(a, p, ws, stream);
    case 2: return launch_kernel<KV, 2, VEC, NV>(a, p, ws, stream);
    case 4: return launch_kernel<KV, 4, VEC, NV>(a, p, ws, stream);
    default: return launch_kernel<KV, 8, VEC, NV>(a, p, ws, stream);
  }
}

/// NV: 16-byte loads need one a lane (two for fp32 D > 128); element loads, up to 8
/// (D <= 256 over 32 lanes).
template <typename KV>
void launch_kv(const DecodeAttentionArgs& a, const Plan& p, float* ws, cudaStream_t stream) {
  const int nv = (p.vecs + p.lanes - 1) / p.lanes;
  if (!p.vec) return launch_gt<KV, false, 8>(a, p, ws, stream);
  if constexpr (sizeof(KV) == 4) {
    if (nv > 1) return launch_gt<KV, true, 2>(a, p, ws, stream);
  }
  launch_gt<KV, true, 1>(a, p, ws, stream);
}

}  // namespace

int64_t decode_attention_workspace_floats(const DecodeAttentionArgs& a) {
  if (a.batch == 0 || a.heads == 0) return 0;
  const Plan p = make_plan(a);
  return p.splits > 1 ? a.batch * a.heads * p.splits * (a.head_dim + 2) : 0;
}

void decode_attention(const DecodeAttentionArgs& a, float* workspace, cudaStream_t stream) {
  if (a.batch == 0 || a.heads == 0) return;
  const Plan p = make_plan(a);
  if (a.kv_dtype == FloatDType::BF16)
    launch_kv<__nv_bfloat16>(a, p, workspace, stream);
  else
    launch_kv<float>(a, p, workspace, stream);
  if (p.splits > 1) {
    const size_t smem = static_cast<size_t>(p.splits) * sizeof(float);
    decode_attention_merge_kernel<<<static_cast<unsigned>(a.batch * a.heads), kThreads, smem, stream>>>(a, workspace,
                                                                                                     p.splits);
  }
}

}  // namespace troupe::kernels::cuda
