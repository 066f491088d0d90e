// Log-prob gather kernels in GCC/Clang vector types of 8 fp32 lanes (one AVX2 register,
// two SSE ones; 16 lanes spill on AVX2 and run 5x slower), built for the baseline, AVX2
// and AVX-512 (cpu/isa.hpp). Selects are lane masks, so no branch stops the vector code.
// A row of 50k fp32 logits is 200 KB: the second pass reads it from L2.
#include "cpu/logprob_gather.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/bf16_bits.hpp"

// The vector helpers are always inlined: the ABI of passing them by value never applies.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace troupe::kernels::cpu {
namespace {

constexpr int kLanes = 8;
typedef float F8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));
typedef uint32_t U8 __attribute__((vector_size(32)));
typedef uint16_t H8 __attribute__((vector_size(16)));

TROUPE_ALWAYS_INLINE F8 splat(float x) { return F8{} + x; }

/// exp within ~1 ulp (measured over [-87, 0]) for x <= 88: x = n ln2 + r with
/// |r| <= ln2 / 2 (n rounded by the 1.5 * 2^23 trick, whose low mantissa bits are n),
/// Cephes' degree-6 polynomial for e^r, and 2^n built in the exponent bits. Below
/// -87.33 (where expf leaves the normal range) it is 0, as exp(-inf); NaN stays NaN.
TROUPE_ALWAYS_INLINE F8 exp8(F8 x) {
  const F8 clamped = x < -87.5f ? splat(-87.5f) : x;
  const F8 magic = splat(12582912.f);  // 1.5 * 2^23
  const F8 shifted = clamped * 1.44269504088896341f + magic;
  const I8 n_int = (I8)shifted - 0x4b400000;  // the bits of `magic`
  const F8 n = shifted - magic;
  F8 r = clamped - n * 0.693359375f;  // ln2 in two parts
  r = r - n * -2.12194440e-4f;
  F8 y = splat(1.9875691500e-4f);
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.f;
  const U8 scale_bits = x < -87.33f ? U8{} : ((U8)n_int + 127u) << 23;
  return y * (F8)scale_bits;
}

/// d clamped below at -104, where exp is 0 already: p * d and p * (d + H) are then 0
/// rather than NaN (0 * -inf) for a logit of -inf; NaN stays NaN.
TROUPE_ALWAYS_INLINE F8 clamp_low(F8 d) { return d < -104.f ? splat(-104.f) : d; }

TROUPE_ALWAYS_INLINE float load1(const float* x, int64_t j) { return x[j]; }
TROUPE_ALWAYS_INLINE float load1(const uint16_t* x, int64_t j) { return bf16_to_f32(x[j]); }
/// 8 logits from x + j; load_part reads `count` < 8 and fills the rest with `fill`.
TROUPE_ALWAYS_INLINE F8 load8(const float* x, int64_t j) {
  F8 v;
  std::memcpy(&v, x + j, sizeof v);
  return v;
}
TROUPE_ALWAYS_INLINE F8 load8(const uint16_t* x, int64_t j) {
  H8 h;
  std::memcpy(&h, x + j, sizeof h);
  const U8 bits = __builtin_convertvector(h, U8) << 16;
  return (F8)bits;
}
template <typename T>
TROUPE_ALWAYS_INLINE F8 load_part(const T* x, int64_t j, int64_t count, float fill) {
  float lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = l < count ? load1(x, j + l) : fill;
  return load8(lanes, 0);
}

TROUPE_ALWAYS_INLINE void store8(float* y, int64_t j, F8 v, int64_t count = kLanes) {
  std::memcpy(y + j, &v, sizeof(float) * static_cast<size_t>(count));
}
/// Nearest even as c10::BFloat16, every NaN to 0x7fc0.
TROUPE_ALWAYS_INLINE void store8(uint16_t* y, int64_t j, F8 v, int64_t count = kLanes) {
  const U8 bits = (U8)v;
  const U8 rounded = (bits + ((bits >> 16) & 1u) + 0x7fffu) >> 16;
  const U8 fixed = v != v ? U8{} + 0x7fc0u : rounded;
  const H8 h = __builtin_convertvector(fixed, H8);
  std::memcpy(y + j, &h, sizeof(uint16_t) * static_cast<size_t>(count));
}

template <typename T>
TROUPE_ALWAYS_INLINE float row_max(const T* x, int64_t v) {
  const float lowest = -std::numeric_limits<float>::infinity();
  F8 m = splat(lowest);
  int64_t j = 0;
  for (; j + kLanes <= v; j += kLanes) {
    const F8 xv = load8(x, j);
    m = xv > m ? xv : m;
  }
  if (j < v) {
    const F8 xv = load_part(x, j, v - j, lowest);
    m = xv > m ? xv : m;
  }
  float max = lowest;
  for (int l = 0; l < kLanes; ++l) max = m[l] > max ? m[l] : max;
  return max;
}

/// One chunk's e = exp(x - max) into `sum` and, with the entropy, e * (x - max) into
/// `weighted`; lanes past `count` add nothing.
template <bool kEntropy>
TROUPE_ALWAYS_INLINE void accumulate(F8 xv, float max, F8& sum, F8& weighted) {
  const F8 d = xv - max;
  const F8 e = exp8(d);
  sum += e;
  if (kEntropy) weighted += e * clamp_low(d);
}

/// Blocks of 256 are summed in fp32 lanes, and each block's lanes into double (a 50k
/// row then keeps ~1e-7 relative, where fp32 lanes over 3k terms each would not).
constexpr int64_t kBlock = 256;

template <bool kEntropy, typename T>
TROUPE_ALWAYS_INLINE void row_sums(const T* x, int64_t v, float max, double& sum, double& weighted) {
  double s[kLanes] = {}, w[kLanes] = {};
  for (int64_t j0 = 0; j0 < v; j0 += kBlock) {
    const int64_t end = v - j0 < kBlock ? v : j0 + kBlock;
    F8 bs = {}, bw = {};
    int64_t j = j0;
    for (; j + kLanes <= end; j += kLanes) accumulate<kEntropy>(load8(x, j), max, bs, bw);
    // The tail reads -inf, whose exp is 0.
    if (j < end) accumulate<kEntropy>(load_part(x, j, end - j, -std::numeric_limits<float>::infinity()), max, bs, bw);
    for (int l = 0; l < kLanes; ++l) {
      s[l] += bs[l];
      w[l] += bw[l];
    }
  }
  sum = weighted = 0;
  for (int l = 0; l < kLanes; ++l) {
    sum += s[l];
    weighted += w[l];
  }
}

template <typename T>
TROUPE_ALWAYS_INLINE RowStats row_stats(const T* x, int64_t v, bool with_entropy) {
  RowStats stats;
  const float max = row_max(x, v);
  // A row of -inf, or with a +inf, has no finite shift (a NaN reaches the sums and stays).
  if (std::isinf(max)) {
    stats.logsumexp = max;
    stats.entropy = std::numeric_limits<float>::quiet_NaN();
    return stats;
  }
  double sum = 0, weighted = 0;
  if (with_entropy)
    row_sums<true>(x, v, max, sum, weighted);
  else
    row_sums<false>(x, v, max, sum, weighted);
  const double log_sum = std::log(sum);
  stats.logsumexp = static_cast<float>(max + log_sum);
  if (with_entropy) stats.entropy = static_cast<float>(log_sum - weighted / sum);
  return stats;
}

/// -p (g_lp + g_ent (d + H)) with d = x - logsumexp (<= 0: logsumexp >= max).
TROUPE_ALWAYS_INLINE F8 grad8(F8 xv, const RowGrad& g) {
  const F8 d = xv - g.logsumexp;
  return -(exp8(d) * (g.g_lp + g.g_ent * (clamp_low(d) + g.entropy)));
}

template <typename T>
TROUPE_ALWAYS_INLINE void row_backward(const T* x, int64_t v, const RowGrad& g, T* dx) {
  int64_t j = 0;
  for (; j + kLanes <= v; j += kLanes) store8(dx, j, grad8(load8(x, j), g));
  if (j < v) store8(dx, j, grad8(load_part(x, j, v - j, 0.f), g), v - j);
  // The target's entry once more in fp32, so a bf16 gradient is rounded once.
  if (g.target >= 0 && g.target < v) {
    F8 value = grad8(splat(load1(x, g.target)), g) + g.g_lp;
    store8(dx, g.target, value, 1);
  }
}

// One set of entry points per instruction set; the bodies above inline into each.
#define TROUPE_LOGPROB_KERNELS(suffix, target)                                                           \
  target RowStats stats_f32_##suffix(const float* x, int64_t v, bool e) { return row_stats(x, v, e); }    \
  target RowStats stats_bf16_##suffix(const uint16_t* x, int64_t v, bool e) { return row_stats(x, v, e); } \
  target void backward_f32_##suffix(const float* x, int64_t v, const RowGrad& g, float* dx) {             \
    row_backward(x, v, g, dx);                                                                           \
  }                                                                                                       \
  target void backward_bf16_##suffix(const uint16_t* x, int64_t v, const RowGrad& g, uint16_t* dx) {      \
    row_backward(x, v, g, dx);                                                                           \
  }                                                                                                       \
  const LogprobKernels kernels_##suffix{stats_f32_##suffix, stats_bf16_##suffix, backward_f32_##suffix,    \
                                        backward_bf16_##suffix};

TROUPE_LOGPROB_KERNELS(baseline, )
#ifdef TROUPE_KERNELS_X86_CLONES
TROUPE_LOGPROB_KERNELS(avx2, TROUPE_TARGET_AVX2)
TROUPE_LOGPROB_KERNELS(avx512, TROUPE_TARGET_AVX512)
#endif
#undef TROUPE_LOGPROB_KERNELS

}  // namespace

const LogprobKernels& logprob_kernels(Isa isa) {
#ifdef TROUPE_KERNELS_X86_CLONES
  if (isa == Isa::Avx512) return kernels_avx512;
  if (isa == Isa::Avx2) return kernels_avx2;
#endif
  return kernels_baseline;
}

}  // namespace troupe::kernels::cpu
