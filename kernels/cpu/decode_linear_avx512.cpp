// AVX-512 decode-linear kernels. One panel (16 output features) at a time: each 64-byte
// line of the packed weight is loaded once and feeds up to 8 rows of x (broadcast) in
// fused multiply-adds; more rows re-read the panel from cache, not from memory.
// fp32: vfmadd231ps; bf16: vdpbf16ps (two bf16 products per fp32 lane).
#include <immintrin.h>

#include <algorithm>

#include "cpu/decode_linear.hpp"
#include "cpu/vector_math.hpp"

namespace troupe::kernels::cpu {
namespace {

constexpr int kMaxRows = 8;
// How far ahead (in 64-byte lines) to ask for the weight stream.
constexpr int64_t kPrefetchLines = 16;

/// Accumulator sets of every row: even and odd k sum apart, so a few rows' adds do not
/// wait on each other. The same for every R, so a row's sums are added in the same
/// order whatever rows share its chunk: a row's result never depends on M.
constexpr int kSets = 2;

/// acc[r] = x[r] . panel for R rows; panel (K, 16) fp32.
template <int R>
inline void panel_f32(const float* x, int64_t ldx, const float* w, int64_t k, __m512* acc) {
  __m512 sum[kSets][R];
  for (int s = 0; s < kSets; ++s)
    for (int r = 0; r < R; ++r) sum[s][r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + kSets <= k; i += kSets) {
    _mm_prefetch(reinterpret_cast<const char*>(w + (i + kPrefetchLines) * kPanel), _MM_HINT_T0);
    for (int s = 0; s < kSets; ++s) {
      const __m512 wv = _mm512_loadu_ps(w + (i + s) * kPanel);
      for (int r = 0; r < R; ++r) sum[s][r] = _mm512_fmadd_ps(_mm512_set1_ps(x[r * ldx + i + s]), wv, sum[s][r]);
    }
  }
  for (; i < k; ++i) {
    const __m512 wv = _mm512_loadu_ps(w + i * kPanel);
    for (int r = 0; r < R; ++r) sum[0][r] = _mm512_fmadd_ps(_mm512_set1_ps(x[r * ldx + i]), wv, sum[0][r]);
  }
  for (int r = 0; r < R; ++r) {
    acc[r] = sum[0][r];
    for (int s = 1; s < kSets; ++s) acc[r] = _mm512_add_ps(acc[r], sum[s][r]);
  }
}

/// The same over the bf16 layout (K2, 16, 2); x as bf16 pairs.
template <int R>
inline void panel_bf16(const uint32_t* xb, int64_t ldx, const uint32_t* w, int64_t k2, __m512* acc) {
  __m512 sum[kSets][R];
  for (int s = 0; s < kSets; ++s)
    for (int r = 0; r < R; ++r) sum[s][r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + kSets <= k2; i += kSets) {
    _mm_prefetch(reinterpret_cast<const char*>(w + (i + kPrefetchLines) * kPanel), _MM_HINT_T0);
    for (int s = 0; s < kSets; ++s) {
      const __m512bh wv = (__m512bh)_mm512_loadu_si512(w + (i + s) * kPanel);
      for (int r = 0; r < R; ++r)
        sum[s][r] = _mm512_dpbf16_ps(sum[s][r], (__m512bh)_mm512_set1_epi32(static_cast<int>(xb[r * ldx + i + s])), wv);
    }
  }
  for (; i < k2; ++i) {
    const __m512bh wv = (__m512bh)_mm512_loadu_si512(w + i * kPanel);
    for (int r = 0; r < R; ++r)
      sum[0][r] = _mm512_dpbf16_ps(sum[0][r], (__m512bh)_mm512_set1_epi32(static_cast<int>(xb[r * ldx + i])), wv);
  }
  for (int r = 0; r < R; ++r) {
    acc[r] = sum[0][r];
    for (int s = 1; s < kSets; ++s) acc[r] = _mm512_add_ps(acc[r], sum[s][r]);
  }
}

inline __mmask16 tail_mask(const DecodeLinearArgs& a, int64_t p) {
  const int64_t count = std::min<int64_t>(kPanel, a.n - p * kPanel);
  return static_cast<__mmask16>((1u << count) - 1u);
}

/// Bias, activation, store of R rows of panel p (masked for a partial last panel).
template <int R>
inline void store_rows(const __m512* acc, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  const __mmask16 mask = tail_mask(a, p);
  const int64_t n0 = p * kPanel;
  const __m512 bias = a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + n0) : _mm512_setzero_ps();
  for (int r = 0; r < R; ++r)
    _mm512_mask_storeu_ps(a.y + (row0 + r) * a.ldy + n0, mask, avx512::activate(a.act, _mm512_add_ps(acc[r], bias)));
}

template <int R>
inline void store_gated_rows(const __m512* gate, const __m512* up, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  const __mmask16 mask = tail_mask(a, p);
  const int64_t n0 = p * kPanel;
  for (int r = 0; r < R; ++r)
    _mm512_mask_storeu_ps(a.y + (row0 + r) * a.ldy + n0, mask,
                          _mm512_mul_ps(avx512::activate(Act::Silu, gate[r]), up[r]));
}

template <int R>
void linear_rows_f32(const float* x, const float* w, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  __m512 acc[R];
  panel_f32<R>(x + row0 * a.ldx, a.ldx, w + p * a.k * kPanel, a.k, acc);
  store_rows<R>(acc, a, row0, p);
}

template <int R>
void linear_rows_bf16(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  const int64_t k2 = (a.k + 1) / 2;
  __m512 acc[R];
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, w + p * k2 * kPanel, k2, acc);
  store_rows<R>(acc, a, row0, p);
}

template <int R>
void gated_rows_f32(const float* x, const float* g, const float* u, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  __m512 gate[R], up[R];
  panel_f32<R>(x + row0 * a.ldx, a.ldx, g + p * a.k * kPanel, a.k, gate);
  panel_f32<R>(x + row0 * a.ldx, a.ldx, u + p * a.k * kPanel, a.k, up);
  store_gated_rows<R>(gate, up, a, row0, p);
}

template <int R>
void gated_rows_bf16(const uint32_t* xb, const uint32_t* g, const uint32_t* u, const DecodeLinearArgs& a, int64_t row0,
                     int64_t p) {
  const int64_t k2 = (a.k + 1) / 2;
  __m512 gate[R], up[R];
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, g + p * k2 * kPanel, k2, gate);
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, u + p * k2 * kPanel, k2, up);
  store_gated_rows<R>(gate, up, a, row0, p);
}

/// Row counts 1..kMaxRows as template instances, indexed by count.
template <template <int> class Kernel>
struct ByRows {
  using Fn = decltype(&Kernel<1>::run);
  static constexpr Fn table[kMaxRows + 1] = {nullptr,          &Kernel<1>::run, &Kernel<2>::run, &Kernel<3>::run,
                                             &Kernel<4>::run,  &Kernel<5>::run, &Kernel<6>::run, &Kernel<7>::run,
                                             &Kernel<8>::run};
};

template <int R>
struct LinearF32 {
  static void run(const float* x, const float* w, const float*, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
    linear_rows_f32<R>(x, w, a, row0, p);
  }
};
template <int R>
struct LinearBf16 {
  static void run(const uint32_t* x, const uint32_t* w, const uint32_t*, const DecodeLinearArgs& a, int64_t row0,
                  int64_t p) {
    linear_rows_bf16<R>(x, w, a, row0, p);
  }
};
template <int R>
struct GatedF32 {
  static void run(const float* x, const float* g, const float* u, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
    gated_rows_f32<R>(x, g, u, a, row0, p);
  }
};
template <int R>
struct GatedBf16 {
  static void run(const uint32_t* x, const uint32_t* g, const uint32_t* u, const DecodeLinearArgs& a, int64_t row0,
                  int64_t p) {
    gated_rows_bf16<R>(x, g, u, a, row0, p);
  }
};

/// Every panel of [p_begin, p_end), the rows in chunks of at most kMaxRows; the panel
/// stays in cache across a panel's chunks.
template <template <int> class Kernel, typename T>
void run_panels(const T* x, const T* w0, const T* w1, const DecodeLinearArgs& a, int64_t p_begin, int64_t p_end) {
  for (int64_t p = p_begin; p < p_end; ++p)
    for (int64_t row0 = 0; row0 < a.m; row0 += kMaxRows)
      ByRows<Kernel>::table[std::min<int64_t>(kMaxRows, a.m - row0)](x, w0, w1, a, row0, p);
}

}  // namespace

void decode_linear_f32_avx512(const float* x, const float* w, const DecodeLinearArgs& a, int64_t p_begin,
                              int64_t p_end) {
  run_panels<LinearF32>(x, w, static_cast<const float*>(nullptr), a, p_begin, p_end);
}

void decode_linear_bf16_avx512(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a, int64_t p_begin,
                               int64_t p_end) {
  run_panels<LinearBf16>(xb, w, static_cast<const uint32_t*>(nullptr), a, p_begin, p_end);
}

void decode_gated_f32_avx512(const float* x, const float* g, const float* u, const DecodeLinearArgs& a,
                             int64_t p_begin, int64_t p_end) {
  run_panels<GatedF32>(x, g, u, a, p_begin, p_end);
}

void decode_gated_bf16_avx512(const uint32_t* xb, const uint32_t* g, const uint32_t* u, const DecodeLinearArgs& a,
                              int64_t p_begin, int64_t p_end) {
  run_panels<GatedBf16>(xb, g, u, a, p_begin, p_end);
}

}  // namespace troupe::kernels::cpu
