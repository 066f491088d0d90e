// AVX2 + FMA decode-linear kernels (x86; compiled for AVX2 by the pragma below and run
// only where the CPU has it). A panel of 16 output features is two 8-lane registers;
// each 64-byte weight line is loaded once and feeds up to 4 rows of x (8 independent
// accumulators). bf16 lines are widened to fp32 in registers (shift / mask).
#if defined(__x86_64__) || defined(__i386__)
// Headers first, for the baseline: their inline functions must not be AVX2 builds that
// the linker could pick for the whole program.
#include <algorithm>

#include "cpu/activation.hpp"
#include "cpu/decode_linear.hpp"

#pragma GCC target("avx2,fma")
#include <immintrin.h>

namespace troupe::kernels::cpu {
namespace {

constexpr int kRows = 4;

/// The sums are locals (copied out once) so they stay in registers.
template <int R>
__attribute__((always_inline)) inline void panel_f32(const float* x, int64_t ldx, const float* w, int64_t k,
                                                     __m256 (*acc)[2]) {
  __m256 s0[R], s1[R];
  for (int r = 0; r < R; ++r) s0[r] = s1[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    const __m256 w0 = _mm256_loadu_ps(w + i * kPanel), w1 = _mm256_loadu_ps(w + i * kPanel + 8);
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_broadcast_ss(x + r * ldx + i);
      s0[r] = _mm256_fmadd_ps(xv, w0, s0[r]);
      s1[r] = _mm256_fmadd_ps(xv, w1, s1[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    acc[r][0] = s0[r];
    acc[r][1] = s1[r];
  }
}

template <int R>
__attribute__((always_inline)) inline void panel_bf16(const uint32_t* xb, int64_t ldx, const uint32_t* w, int64_t k2,
                                                      __m256 (*acc)[2]) {
  __m256 s0[R], s1[R];
  for (int r = 0; r < R; ++r) s0[r] = s1[r] = _mm256_setzero_ps();
  const __m256i high_mask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t i = 0; i < k2; ++i) {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i * kPanel));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i * kPanel + 8));
    const __m256 lo0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)), hi0 = _mm256_castsi256_ps(_mm256_and_si256(v0, high_mask));
    const __m256 lo1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)), hi1 = _mm256_castsi256_ps(_mm256_and_si256(v1, high_mask));
    for (int r = 0; r < R; ++r) {
      const uint32_t pair = xb[r * ldx + i];
      const __m256 x0 = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(pair << 16)));
      const __m256 x1 = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(pair & 0xffff0000u)));
      s0[r] = _mm256_fmadd_ps(x1, hi0, _mm256_fmadd_ps(x0, lo0, s0[r]));
      s1[r] = _mm256_fmadd_ps(x1, hi1, _mm256_fmadd_ps(x0, lo1, s1[r]));
    }
  }
  for (int r = 0; r < R; ++r) {
    acc[r][0] = s0[r];
    acc[r][1] = s1[r];
  }
}

/// Bias and activation on the 16 sums of one row, stored (the last panel partially).
inline void store_row(const __m256* acc, const DecodeLinearArgs& a, int64_t row, int64_t p) {
  alignas(32) float out[kPanel];
  _mm256_store_ps(out, acc[0]);
  _mm256_store_ps(out + 8, acc[1]);
  const int64_t n0 = p * kPanel, count = std::min<int64_t>(kPanel, a.n - n0);
  float* y = a.y + row * a.ldy + n0;
  if (a.act == Act::None || a.act == Act::Relu) {
    for (int64_t j = 0; j < count; ++j) {
      const float v = out[j] + (a.bias ? a.bias[n0 + j] : 0.f);
      y[j] = a.act == Act::Relu && v < 0.f ? 0.f : v;
    }
    return;
  }
  for (int64_t j = 0; j < count; ++j) y[j] = apply_act(a.act, out[j] + (a.bias ? a.bias[n0 + j] : 0.f));
}

inline void store_gated_row(const __m256* g, const __m256* u, const DecodeLinearArgs& a, int64_t row, int64_t p) {
  alignas(32) float gate[kPanel], up[kPanel];
  _mm256_store_ps(gate, g[0]);
  _mm256_store_ps(gate + 8, g[1]);
  _mm256_store_ps(up, u[0]);
  _mm256_store_ps(up + 8, u[1]);
  const int64_t n0 = p * kPanel, count = std::min<int64_t>(kPanel, a.n - n0);
  float* y = a.y + row * a.ldy + n0;
  for (int64_t j = 0; j < count; ++j) y[j] = apply_act(Act::Silu, gate[j]) * up[j];
}

template <int R>
void rows_f32(const float* x, const float* w, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  __m256 acc[R][2];
  panel_f32<R>(x + row0 * a.ldx, a.ldx, w + p * a.k * kPanel, a.k, acc);
  for (int r = 0; r < R; ++r) store_row(acc[r], a, row0 + r, p);
}

template <int R>
void rows_bf16(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  const int64_t k2 = (a.k + 1) / 2;
  __m256 acc[R][2];
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, w + p * k2 * kPanel, k2, acc);
  for (int r = 0; r < R; ++r) store_row(acc[r], a, row0 + r, p);
}

template <int R>
void rows_gated_f32(const float* x, const float* g, const float* u, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  __m256 gate[R][2], up[R][2];
  panel_f32<R>(x + row0 * a.ldx, a.ldx, g + p * a.k * kPanel, a.k, gate);
  panel_f32<R>(x + row0 * a.ldx, a.ldx, u + p * a.k * kPanel, a.k, up);
  for (int r = 0; r < R; ++r) store_gated_row(gate[r], up[r], a, row0 + r, p);
}

template <int R>
void rows_gated_bf16(const uint32_t* xb, const uint32_t* g, const uint32_t* u, const DecodeLinearArgs& a, int64_t row0,
                     int64_t p) {
  const int64_t k2 = (a.k + 1) / 2;
  __m256 gate[R][2], up[R][2];
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, g + p * k2 * kPanel, k2, gate);
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, u + p * k2 * kPanel, k2, up);
  for (int r = 0; r < R; ++r) store_gated_row(gate[r], up[r], a, row0 + r, p);
}

/// Every panel of [p_begin, p_end), its rows in chunks of kRows; the panel stays in
/// cache across a panel's chunks.
#define TROUPE_FOR_ROW_CHUNKS(CALL)                     \
  for (int64_t p = p_begin; p < p_end; ++p) {           \
    int64_t row0 = 0;                                   \
    for (; row0 + kRows <= a.m; row0 += kRows) CALL(4); \
    switch (a.m - row0) {                               \
      case 3: CALL(3); break;                           \
      case 2: CALL(2); break;                           \
      case 1: CALL(1); break;                           \
      default: break;                                   \
    }                                                   \
  }

}  // namespace

void decode_linear_f32_avx2(const float* x, const float* w, const DecodeLinearArgs& a, int64_t p_begin, int64_t p_end) {
#define TROUPE_CALL(R) rows_f32<R>(x, w, a, row0, p)
  TROUPE_FOR_ROW_CHUNKS(TROUPE_CALL)
#undef TROUPE_CALL
}

void decode_linear_bf16_avx2(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a, int64_t p_begin,
                             int64_t p_end) {
#define TROUPE_CALL(R) rows_bf16<R>(xb, w, a, row0, p)
  TROUPE_FOR_ROW_CHUNKS(TROUPE_CALL)
#undef TROUPE_CALL
}

void decode_gated_f32_avx2(const float* x, const float* g, const float* u, const DecodeLinearArgs& a, int64_t p_begin,
                           int64_t p_end) {
#define TROUPE_CALL(R) rows_gated_f32<R>(x, g, u, a, row0, p)
  TROUPE_FOR_ROW_CHUNKS(TROUPE_CALL)
#undef TROUPE_CALL
}

void decode_gated_bf16_avx2(const uint32_t* xb, const uint32_t* g, const uint32_t* u, const DecodeLinearArgs& a,
                            int64_t p_begin, int64_t p_end) {
#define TROUPE_CALL(R) rows_gated_bf16<R>(xb, g, u, a, row0, p)
  TROUPE_FOR_ROW_CHUNKS(TROUPE_CALL)
#undef TROUPE_CALL
}
#undef TROUPE_FOR_ROW_CHUNKS

}  // namespace troupe::kernels::cpu
#endif
