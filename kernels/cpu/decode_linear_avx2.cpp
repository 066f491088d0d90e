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
/// Weight lines fetched ahead of use. With several rows a 64-byte line feeds ~25
/// instructions, so the out-of-order window alone keeps too few lines in flight: 2x
/// slower at M = 4 than at M = 1 without this on Zen 4.
constexpr int64_t kPrefetchLines = 16;

inline void prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

/// The 16 sums of R rows, written once after the loop.
template <int R>
struct PanelSums {
  alignas(32) float v[R][kPanel];
};

/// Up to four rows' sums as named registers: with arrays of __m256 GCC 12 stores every
/// accumulator to the stack on every step (2x slower at M = 4).
struct Sums4 {
  __m256 lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3;

  __attribute__((always_inline)) Sums4() {
    lo0 = hi0 = lo1 = hi1 = lo2 = hi2 = lo3 = hi3 = _mm256_setzero_ps();
  }

  /// Row r's sums += x_r * (w0 | w1), for the rows this panel call has.
  template <int R>
  __attribute__((always_inline)) void add(const __m256 x0, const __m256 x1, const __m256 x2, const __m256 x3,
                                          const __m256 w0, const __m256 w1) {
    lo0 = _mm256_fmadd_ps(x0, w0, lo0);
    hi0 = _mm256_fmadd_ps(x0, w1, hi0);
    if constexpr (R > 1) lo1 = _mm256_fmadd_ps(x1, w0, lo1), hi1 = _mm256_fmadd_ps(x1, w1, hi1);
    if constexpr (R > 2) lo2 = _mm256_fmadd_ps(x2, w0, lo2), hi2 = _mm256_fmadd_ps(x2, w1, hi2);
    if constexpr (R > 3) lo3 = _mm256_fmadd_ps(x3, w0, lo3), hi3 = _mm256_fmadd_ps(x3, w1, hi3);
  }

  template <int R>
  __attribute__((always_inline)) void store(PanelSums<R>& out) const {
    const __m256 lo[4] = {lo0, lo1, lo2, lo3}, hi[4] = {hi0, hi1, hi2, hi3};
    for (int r = 0; r < R; ++r) {
      _mm256_store_ps(out.v[r], lo[r]);
      _mm256_store_ps(out.v[r] + 8, hi[r]);
    }
  }
};

/// x row r's value i (or nothing, for rows past R).
template <int R>
__attribute__((always_inline)) inline __m256 broadcast_row(const float* x, int64_t ldx, int r, int64_t i) {
  return r < R ? _mm256_broadcast_ss(x + r * ldx + i) : _mm256_setzero_ps();
}

template <int R>
__attribute__((always_inline)) inline void panel_f32(const float* x, int64_t ldx, const float* w, int64_t k,
                                                     PanelSums<R>& out) {
  Sums4 sums;
  for (int64_t i = 0; i < k; ++i) {
    prefetch(w + (i + kPrefetchLines) * kPanel);  // one line per step: 16 fp32
    const __m256 w0 = _mm256_loadu_ps(w + i * kPanel), w1 = _mm256_loadu_ps(w + i * kPanel + 8);
    sums.add<R>(broadcast_row<R>(x, ldx, 0, i), broadcast_row<R>(x, ldx, 1, i), broadcast_row<R>(x, ldx, 2, i),
                broadcast_row<R>(x, ldx, 3, i), w0, w1);
  }
  sums.store(out);
}

/// The low and high bf16 of a pair, widened to fp32 and broadcast (rows past R: nothing).
template <int R>
__attribute__((always_inline)) inline void broadcast_pair(const uint32_t* xb, int64_t ldx, int r, int64_t i, __m256& lo,
                                                          __m256& hi) {
  if (r >= R) {
    lo = hi = _mm256_setzero_ps();
    return;
  }
  const uint32_t pair = xb[r * ldx + i];
  lo = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(pair << 16)));
  hi = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(pair & 0xffff0000u)));
}

template <int R>
__attribute__((always_inline)) inline void panel_bf16(const uint32_t* xb, int64_t ldx, const uint32_t* w, int64_t k2,
                                                      PanelSums<R>& out) {
  Sums4 sums;
  const __m256i high_mask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t i = 0; i < k2; ++i) {
    // A step reads 16 pairs = 64 bytes: one line.
    prefetch(w + (i + kPrefetchLines) * kPanel);
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i * kPanel));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i * kPanel + 8));
    // Feature j's even-k weight is the low half of pair j, its odd-k weight the high half.
    const __m256 even0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16));
    const __m256 odd0 = _mm256_castsi256_ps(_mm256_and_si256(v0, high_mask));
    const __m256 even1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16));
    const __m256 odd1 = _mm256_castsi256_ps(_mm256_and_si256(v1, high_mask));
    __m256 e0, o0, e1, o1, e2, o2, e3, o3;
    broadcast_pair<R>(xb, ldx, 0, i, e0, o0);
    broadcast_pair<R>(xb, ldx, 1, i, e1, o1);
    broadcast_pair<R>(xb, ldx, 2, i, e2, o2);
    broadcast_pair<R>(xb, ldx, 3, i, e3, o3);
    sums.add<R>(e0, e1, e2, e3, even0, even1);
    sums.add<R>(o0, o1, o2, o3, odd0, odd1);
  }
  sums.store(out);
}

/// Bias and activation on the 16 sums of one row, stored (the last panel partially).
inline void store_row(const float* out, const DecodeLinearArgs& a, int64_t row, int64_t p) {
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

inline void store_gated_row(const float* gate, const float* up, const DecodeLinearArgs& a, int64_t row, int64_t p) {
  const int64_t n0 = p * kPanel, count = std::min<int64_t>(kPanel, a.n - n0);
  float* y = a.y + row * a.ldy + n0;
  for (int64_t j = 0; j < count; ++j) y[j] = apply_act(Act::Silu, gate[j]) * up[j];
}

template <int R>
void rows_f32(const float* x, const float* w, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  PanelSums<R> sums;
  panel_f32<R>(x + row0 * a.ldx, a.ldx, w + p * a.k * kPanel, a.k, sums);
  for (int r = 0; r < R; ++r) store_row(sums.v[r], a, row0 + r, p);
}

template <int R>
void rows_bf16(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  const int64_t k2 = (a.k + 1) / 2;
  PanelSums<R> sums;
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, w + p * k2 * kPanel, k2, sums);
  for (int r = 0; r < R; ++r) store_row(sums.v[r], a, row0 + r, p);
}

template <int R>
void rows_gated_f32(const float* x, const float* g, const float* u, const DecodeLinearArgs& a, int64_t row0, int64_t p) {
  PanelSums<R> gate, up;
  panel_f32<R>(x + row0 * a.ldx, a.ldx, g + p * a.k * kPanel, a.k, gate);
  panel_f32<R>(x + row0 * a.ldx, a.ldx, u + p * a.k * kPanel, a.k, up);
  for (int r = 0; r < R; ++r) store_gated_row(gate.v[r], up.v[r], a, row0 + r, p);
}

template <int R>
void rows_gated_bf16(const uint32_t* xb, const uint32_t* g, const uint32_t* u, const DecodeLinearArgs& a, int64_t row0,
                     int64_t p) {
  const int64_t k2 = (a.k + 1) / 2;
  PanelSums<R> gate, up;
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, g + p * k2 * kPanel, k2, gate);
  panel_bf16<R>(xb + row0 * a.ldx, a.ldx, u + p * k2 * kPanel, k2, up);
  for (int r = 0; r < R; ++r) store_gated_row(gate.v[r], up.v[r], a, row0 + r, p);
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
