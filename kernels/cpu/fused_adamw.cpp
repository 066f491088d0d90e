// AdamW kernels: one pass over the span in torch's order of operations. The baseline
// build is a plain loop; the AVX2 build (also what AVX-512 CPUs run: the step is bound
// by memory, not lanes) spells the lanes out, since the compiler will not vectorise a
// sqrt that may set errno. Contraction is off in both: a fused p * decay + q would
// round once where torch rounds twice.
#include "cpu/fused_adamw.hpp"

#include <cmath>

#include "cpu/bf16_bits.hpp"

#ifdef TROUPE_KERNELS_X86_CLONES
#include <immintrin.h>
#endif

#if defined(__clang__)
#pragma clang fp contract(off)
#define TROUPE_NO_CONTRACT
#elif defined(__GNUC__)
#define TROUPE_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define TROUPE_NO_CONTRACT
#endif

namespace troupe::kernels::cpu {
namespace {

TROUPE_NO_CONTRACT void adamw_baseline(float* __restrict p, const float* __restrict g, float* __restrict m,
                                       float* __restrict v, uint16_t* __restrict bf16, int64_t n,
                                       const AdamWScalars& s) {
  const AdamWScalars c = s;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float pi = c.apply_decay ? p[i] * c.decay : p[i];
    const float mi = __builtin_fmaf(gi, c.one_minus_beta1, m[i] * c.beta1);
    const float vi = __builtin_fmaf(c.one_minus_beta2 * gi, gi, v[i] * c.beta2);
    const float denom = __builtin_sqrtf(vi) / c.sqrt_bias_correction2 + c.eps;
    const float updated = pi + (c.neg_step_size * mi) / denom;
    m[i] = mi;
    v[i] = vi;
    p[i] = updated;
    if (bf16) bf16[i] = f32_to_bf16(updated);
  }
}

#ifdef TROUPE_KERNELS_X86_CLONES
TROUPE_TARGET_AVX2 TROUPE_NO_CONTRACT void adamw_avx2(float* __restrict p, const float* __restrict g,
                                                      float* __restrict m, float* __restrict v,
                                                      uint16_t* __restrict bf16, int64_t n, const AdamWScalars& s) {
  const __m256 decay = _mm256_set1_ps(s.decay), beta1 = _mm256_set1_ps(s.beta1);
  const __m256 one_minus_beta1 = _mm256_set1_ps(s.one_minus_beta1), beta2 = _mm256_set1_ps(s.beta2);
  const __m256 one_minus_beta2 = _mm256_set1_ps(s.one_minus_beta2);
  const __m256 sqrt_bc2 = _mm256_set1_ps(s.sqrt_bias_correction2), eps = _mm256_set1_ps(s.eps);
  const __m256 neg_step = _mm256_set1_ps(s.neg_step_size);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    __m256 pi = _mm256_loadu_ps(p + i);
    if (s.apply_decay) pi = _mm256_mul_ps(pi, decay);
    const __m256 mi = _mm256_fmadd_ps(gi, one_minus_beta1, _mm256_mul_ps(_mm256_loadu_ps(m + i), beta1));
    const __m256 vi =
        _mm256_fmadd_ps(_mm256_mul_ps(one_minus_beta2, gi), gi, _mm256_mul_ps(_mm256_loadu_ps(v + i), beta2));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), sqrt_bc2), eps);
    pi = _mm256_add_ps(pi, _mm256_div_ps(_mm256_mul_ps(neg_step, mi), denom));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    _mm256_storeu_ps(p + i, pi);
  }
  if (bf16)
    for (int64_t j = 0; j < i; ++j) bf16[j] = f32_to_bf16(p[j]);  // vectorised by the compiler
  if (i < n) adamw_baseline(p + i, g + i, m + i, v + i, bf16 ? bf16 + i : nullptr, n - i, s);
}
#endif

}  // namespace

AdamWKernel adamw_kernel(Isa isa) {
#ifdef TROUPE_KERNELS_X86_CLONES
  if (isa != Isa::Baseline) return adamw_avx2;
#endif
  return adamw_baseline;
}

}  // namespace troupe::kernels::cpu
