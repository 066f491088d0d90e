// Portable decode-linear kernels: the packed layouts read in order, one panel of 16
// output features at a time, up to 4 rows of x per pass so each loaded weight line
// feeds 4 independent sums. The baseline for CPUs without AVX2 (x86 CPUs with it run
// decode_linear_avx2.cpp, those with AVX-512 decode_linear_avx512.cpp).
#include "cpu/decode_linear.hpp"

#include <algorithm>
#include <cstring>

#include "cpu/activation.hpp"
#include "cpu/isa.hpp"

namespace troupe::kernels::cpu {
namespace {

constexpr int kRows = 4;

TROUPE_ALWAYS_INLINE float bf16_low(uint32_t pair) {
  const uint32_t bits = pair << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
TROUPE_ALWAYS_INLINE float bf16_high(uint32_t pair) {
  const uint32_t bits = pair & 0xffff0000u;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// acc[r][16] = x[r] . panel for R rows, fp32 layout (K, 16).
/// The sums live in a local array (not behind a pointer that might alias x or w) so
/// they stay in registers.
template <int R>
TROUPE_ALWAYS_INLINE void panel_f32(const float* __restrict x, int64_t ldx, const float* __restrict panel, int64_t k,
                                    float (*acc)[kPanel]) {
  float sum[R][kPanel] = {};
  for (int64_t i = 0; i < k; ++i) {
    const float* __restrict w = panel + i * kPanel;
    for (int r = 0; r < R; ++r) {
      const float xv = x[r * ldx + i];
      for (int j = 0; j < kPanel; ++j) sum[r][j] += xv * w[j];
    }
  }
  std::memcpy(acc, sum, sizeof sum);
}

/// The same over the bf16 layout (K2, 16, 2), x as bf16 pairs; the weight pairs are
/// widened to fp32 once per line and shared by the R rows.
template <int R>
TROUPE_ALWAYS_INLINE void panel_bf16(const uint32_t* __restrict xb, int64_t ldx, const uint32_t* __restrict panel,
                                     int64_t k2, float (*acc)[kPanel]) {
  float sum[R][kPanel] = {};
  for (int64_t i = 0; i < k2; ++i) {
    const uint32_t* __restrict w = panel + i * kPanel;
    float lo[kPanel], hi[kPanel];
    for (int j = 0; j < kPanel; ++j) {
      lo[j] = bf16_low(w[j]);
      hi[j] = bf16_high(w[j]);
    }
    for (int r = 0; r < R; ++r) {
      const float x0 = bf16_low(xb[r * ldx + i]), x1 = bf16_high(xb[r * ldx + i]);
      for (int j = 0; j < kPanel; ++j) sum[r][j] += x0 * lo[j] + x1 * hi[j];
    }
  }
  std::memcpy(acc, sum, sizeof sum);
}

TROUPE_ALWAYS_INLINE int64_t panel_count(const DecodeLinearArgs& a, int64_t p) {
  return std::min<int64_t>(kPanel, a.n - p * kPanel);
}

template <int R>
TROUPE_ALWAYS_INLINE void store(const float (*acc)[kPanel], const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  const int64_t n0 = p * kPanel, count = panel_count(a, p);
  for (int r = 0; r < R; ++r) {
    float* y = a.y + (row0 + r) * a.ldy + n0;
    for (int64_t j = 0; j < count; ++j) y[j] = apply_act(a.act, acc[r][j] + (a.bias ? a.bias[n0 + j] : 0.f));
  }
}

template <int R>
TROUPE_ALWAYS_INLINE void store_gated(const float (*g)[kPanel], const float (*u)[kPanel], const DecodeLinearArgs& a,
                                      int64_t row0, int64_t p) {
  const int64_t n0 = p * kPanel, count = panel_count(a, p);
  for (int r = 0; r < R; ++r) {
    float* y = a.y + (row0 + r) * a.ldy + n0;
    for (int64_t j = 0; j < count; ++j) y[j] = apply_act(Act::Silu, g[r][j]) * u[r][j];
  }
}

template <int R>
TROUPE_ALWAYS_INLINE void rows_f32(const float* x, const float* w, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  float acc[R][kPanel];
  panel_f32<R>(x + row0 * a.ldx, a.ldx, w + p * a.k * kPanel, a.k, acc);
  store<R>(acc, a, row0, p);
}

template <int R>
TROUPE_ALWAYS_INLINE void rows_bf16(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a, int64_t row0,
                                    int64_t p) {
  const int64_t k2 = (a.k + 1) / 2;
  float acc[R][kPanel];
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, w + p * k2 * kPanel, k2, acc);
  store<R>(acc, a, row0, p);
}

template <int R>
TROUPE_ALWAYS_INLINE void rows_gated_f32(const float* x, const float* g, const float* u, const DecodeLinearArgs& a,
                                         int64_t row0, int64_t p) {
  float gate[R][kPanel], up[R][kPanel];
  panel_f32<R>(x + row0 * a.ldx, a.ldx, g + p * a.k * kPanel, a.k, gate);
  panel_f32<R>(x + row0 * a.ldx, a.ldx, u + p * a.k * kPanel, a.k, up);
  store_gated<R>(gate, up, a, row0, p);
}

template <int R>
TROUPE_ALWAYS_INLINE void rows_gated_bf16(const uint32_t* xb, const uint32_t* g, const uint32_t* u,
                                          const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  const int64_t k2 = (a.k + 1) / 2;
  float gate[R][kPanel], up[R][kPanel];
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, g + p * k2 * kPanel, k2, gate);
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, u + p * k2 * kPanel, k2, up);
  store_gated<R>(gate, up, a, row0, p);
}

/// Every panel of [p_begin, p_end), its rows in chunks of kRows (the panel stays in
/// cache across a panel's chunks); `Fn::run<R>` does R rows of one panel.
#define TROUPE_FOR_ROW_CHUNKS(CALL)                                        \
  for (int64_t p = p_begin; p < p_end; ++p) {                              \
    int64_t row0 = 0;                                                      \
    for (; row0 + kRows <= a.m; row0 += kRows) CALL(4);                    \
    switch (a.m - row0) {                                                  \
      case 3: CALL(3); break;                                              \
      case 2: CALL(2); break;                                              \
      case 1: CALL(1); break;                                              \
      default: break;                                                      \
    }                                                                      \
  }

TROUPE_ALWAYS_INLINE void linear_f32(const float* x, const float* w, const DecodeLinearArgs& a, int64_t p_begin,
                                     int64_t p_end) {
#define TROUPE_CALL(R) rows_f32<R>(x, w, a, row0, p)
  TROUPE_FOR_ROW_CHUNKS(TROUPE_CALL)
#undef TROUPE_CALL
}
TROUPE_ALWAYS_INLINE void linear_bf16(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a,
                                      int64_t p_begin, int64_t p_end) {
#define TROUPE_CALL(R) rows_bf16<R>(xb, w, a, row0, p)
  TROUPE_FOR_ROW_CHUNKS(TROUPE_CALL)
#undef TROUPE_CALL
}
TROUPE_ALWAYS_INLINE void gated_f32(const float* x, const float* g, const float* u, const DecodeLinearArgs& a,
                                    int64_t p_begin, int64_t p_end) {
#define TROUPE_CALL(R) rows_gated_f32<R>(x, g, u, a, row0, p)
  TROUPE_FOR_ROW_CHUNKS(TROUPE_CALL)
#undef TROUPE_CALL
}
TROUPE_ALWAYS_INLINE void gated_bf16(const uint32_t* xb, const uint32_t* g, const uint32_t* u, const DecodeLinearArgs& a,
                                     int64_t p_begin, int64_t p_end) {
#define TROUPE_CALL(R) rows_gated_bf16<R>(xb, g, u, a, row0, p)
  TROUPE_FOR_ROW_CHUNKS(TROUPE_CALL)
#undef TROUPE_CALL
}
#undef TROUPE_FOR_ROW_CHUNKS

}  // namespace

// The baseline build and the AVX2 + FMA build of the same bodies.
#define TROUPE_DECODE_LINEAR_BUILD(SUFFIX, TARGET)                                                                    \
  TARGET void decode_linear_f32##SUFFIX(const float* x, const float* w, const DecodeLinearArgs& a, int64_t p_begin,   \
                                        int64_t p_end) {                                                              \
    linear_f32(x, w, a, p_begin, p_end);                                                                              \
  }                                                                                                                   \
  TARGET void decode_linear_bf16##SUFFIX(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a,            \
                                         int64_t p_begin, int64_t p_end) {                                            \
    linear_bf16(xb, w, a, p_begin, p_end);                                                                            \
  }                                                                                                                   \
  TARGET void decode_gated_f32##SUFFIX(const float* x, const float* g, const float* u, const DecodeLinearArgs& a,     \
                                       int64_t p_begin, int64_t p_end) {                                              \
    gated_f32(x, g, u, a, p_begin, p_end);                                                                            \
  }                                                                                                                   \
  TARGET void decode_gated_bf16##SUFFIX(const uint32_t* xb, const uint32_t* g, const uint32_t* u,                     \
                                        const DecodeLinearArgs& a, int64_t p_begin, int64_t p_end) {                  \
    gated_bf16(xb, g, u, a, p_begin, p_end);                                                                          \
  }

TROUPE_DECODE_LINEAR_BUILD(, )

}  // namespace troupe::kernels::cpu
