// AVX-512 decode attention: the portable kernel's passes with 16-float vectors. Keys:
// several key rows per step for a small head block, so the fused multiply-adds of one
// dot product do not wait on each other. Values: a (heads x 64 floats) tile of
// accumulators in registers per pass over the attended rows. bf16 caches are widened
// to fp32 on load (a shift), all sums in fp32.
#include <immintrin.h>

#include <limits>

#include "cpu/decode_attention.hpp"

namespace troupe::kernels::cpu {
namespace {

inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load16(const uint16_t* p, __mmask16 m) {
  const __m256i raw = _mm256_maskz_loadu_epi16(m, p);
  // The zero-masked shift: GCC 12 warns on the plain one's undefined pass-through.
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(__mmask16(0xffff), _mm512_cvtepu16_epi32(raw), 16));
}

/// e^x: x = n ln2 + r with |r| <= ln2 / 2, Cephes' polynomial for e^r, then 2^n by
/// vscalefps. Below -104 (masked scores are -inf) the result is 0.
inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_scalef_ps(p, n);
}

inline __mmask16 chunk_mask(int64_t c, int64_t nc, __mmask16 tail) { return c == nc - 1 ? tail : __mmask16(0xffff); }

/// Scores of N query heads (q rows of dp floats) against KB key rows per step.
template <int N, int KB, typename KT>
void block_scores(const float* q, int64_t dp, int64_t nc, __mmask16 tail, const KT* k, int64_t ks,
                  const int32_t* pos, int64_t count, float scale, float* scores) {
  int64_t t = 0;
  for (; t + KB <= count; t += KB) {
    __m512 acc[N][KB];
    for (int g = 0; g < N; ++g)
      for (int j = 0; j < KB; ++j) acc[g][j] = _mm512_setzero_ps();
    for (int64_t c = 0; c < nc; ++c) {
      const __mmask16 m = chunk_mask(c, nc, tail);
      __m512 kc[KB];
      for (int j = 0; j < KB; ++j) kc[j] = load16(k + pos[t + j] * ks + 16 * c, m);
      for (int g = 0; g < N; ++g) {
        const __m512 qc = _mm512_loadu_ps(q + g * dp + 16 * c);
        for (int j = 0; j < KB; ++j) acc[g][j] = _mm512_fmadd_ps(qc, kc[j], acc[g][j]);
      }
    }
    for (int g = 0; g < N; ++g)
      for (int j = 0; j < KB; ++j) scores[g * count + t + j] = _mm512_reduce_add_ps(acc[g][j]) * scale;
  }
  for (; t < count; ++t) {  // the last rows, one at a time
    __m512 acc[N];
    for (int g = 0; g < N; ++g) acc[g] = _mm512_setzero_ps();
    for (int64_t c = 0; c < nc; ++c) {
      const __m512 kc = load16(k + pos[t] * ks + 16 * c, chunk_mask(c, nc, tail));
      for (int g = 0; g < N; ++g) acc[g] = _mm512_fmadd_ps(_mm512_loadu_ps(q + g * dp + 16 * c), kc, acc[g]);
    }
    for (int g = 0; g < N; ++g) scores[g * count + t] = _mm512_reduce_add_ps(acc[g]) * scale;
  }
}

/// acc[g][c0 * 16 .. (c0 + NC) * 16) = sum over attended rows of p[g][t] v[t] for NG heads.
template <int NG, int NC, typename KT>
void block_values(const float* p, int64_t count, const KT* v, int64_t vs, const int32_t* pos, int64_t c0, int64_t nc,
                  __mmask16 tail, float* acc, int64_t dp) {
  __m512 sum[NG][NC];
  for (int g = 0; g < NG; ++g)
    for (int c = 0; c < NC; ++c) sum[g][c] = _mm512_setzero_ps();
  __mmask16 masks[NC];
  for (int c = 0; c < NC; ++c) masks[c] = chunk_mask(c0 + c, nc, tail);
  for (int64_t t = 0; t < count; ++t) {
    const KT* row = v + pos[t] * vs + 16 * c0;
    __m512 vc[NC];
    for (int c = 0; c < NC; ++c) vc[c] = load16(row + 16 * c, masks[c]);
    for (int g = 0; g < NG; ++g) {
      const __m512 w = _mm512_set1_ps(p[g * count + t]);
      for (int c = 0; c < NC; ++c) sum[g][c] = _mm512_fmadd_ps(w, vc[c], sum[g][c]);
    }
  }
  for (int g = 0; g < NG; ++g)
    for (int c = 0; c < NC; ++c) _mm512_storeu_ps(acc + g * dp + 16 * (c0 + c), sum[g][c]);
}

template <typename KT>
using ScoresFn = void (*)(const float*, int64_t, int64_t, __mmask16, const KT*, int64_t, const int32_t*, int64_t, float,
                          float*);
template <typename KT>
using ValuesFn = void (*)(const float*, int64_t, const KT*, int64_t, const int32_t*, int64_t, int64_t, __mmask16,
                          float*, int64_t);

template <typename KT>
ScoresFn<KT> scores_fn(int64_t n) {
  switch (n) {
    case 1: return block_scores<1, 4, KT>;
    case 2: return block_scores<2, 2, KT>;
    case 3: return block_scores<3, 2, KT>;
    case 4: return block_scores<4, 1, KT>;
    case 5: return block_scores<5, 1, KT>;
    case 6: return block_scores<6, 1, KT>;
    case 7: return block_scores<7, 1, KT>;
    default: return block_scores<8, 1, KT>;
  }
}

template <int NG, typename KT>
ValuesFn<KT> values_fn_nc(int64_t nc) {
  switch (nc) {
    case 1: return block_values<NG, 1, KT>;
    case 2: return block_values<NG, 2, KT>;
    case 3: return block_values<NG, 3, KT>;
    default: return block_values<NG, 4, KT>;
  }
}

template <typename KT>
ValuesFn<KT> values_fn(int64_t ng, int64_t nc) {
  switch (ng) {
    case 1: return values_fn_nc<1, KT>(nc);
    case 2: return values_fn_nc<2, KT>(nc);
    case 3: return values_fn_nc<3, KT>(nc);
    default: return values_fn_nc<4, KT>(nc);
  }
}

/// Softmax numerators of one head's scores in place; returns 1 / their sum.
float softmax_numerators(float* sc, int64_t count) {
  __m512 mv = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t t = 0; t < count; t += 16) {
    const __mmask16 m = count - t >= 16 ? __mmask16(0xffff) : __mmask16((1u << (count - t)) - 1);
    mv = _mm512_mask_max_ps(mv, m, mv, _mm512_maskz_loadu_ps(m, sc + t));
  }
  const __m512 maxv = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t t = 0; t < count; t += 16) {
    const __mmask16 m = count - t >= 16 ? __mmask16(0xffff) : __mmask16((1u << (count - t)) - 1);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, sc + t), maxv));
    _mm512_mask_storeu_ps(sc + t, m, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  return 1.f / _mm512_reduce_add_ps(sum);
}

template <typename QT, typename KT>
void head_block(const DecodeAttentionArgs& a, int64_t b, int64_t h, int64_t kvh, int64_t n, const DecodeScratch& s) {
  const int64_t d = a.head_dim, dp = padded_head_dim(d), nc = dp / 16;
  const __mmask16 tail = d % 16 == 0 ? __mmask16(0xffff) : __mmask16((1u << (d % 16)) - 1);
  const int64_t count = allowed_positions(a, b, s.positions);
  const auto* k = static_cast<const KT*>(a.k) + b * a.k_stride_b + kvh * a.k_stride_h;
  const auto* v = static_cast<const KT*>(a.v) + b * a.v_stride_b + kvh * a.v_stride_h;

  for (int64_t g = 0; g < n; ++g) {
    const QT* qrow = static_cast<const QT*>(a.q) + b * a.q_stride_b + (h + g) * a.q_stride_h;
    for (int64_t c = 0; c < nc; ++c) _mm512_storeu_ps(s.q + g * dp + 16 * c, load16(qrow + 16 * c, chunk_mask(c, nc, tail)));
  }
  scores_fn<KT>(n)(s.q, dp, nc, tail, k, a.k_stride_s, s.positions, count, a.scale, s.scores);
  float inv_sum[kMaxHeadBlock];
  for (int64_t g = 0; g < n; ++g) inv_sum[g] = softmax_numerators(s.scores + g * count, count);
  for (int64_t g0 = 0; g0 < n; g0 += 4) {
    const int64_t ng = n - g0 < 4 ? n - g0 : 4;
    for (int64_t c0 = 0; c0 < nc; c0 += 4) {
      const int64_t ncb = nc - c0 < 4 ? nc - c0 : 4;
      values_fn<KT>(ng, ncb)(s.scores + g0 * count, count, v, a.v_stride_s, s.positions, c0, nc, tail,
                             s.acc + g0 * dp, dp);
    }
  }
  for (int64_t g = 0; g < n; ++g) {
    const int64_t o = (b * a.heads + h + g) * d;
    const float* acc = s.acc + g * dp;
    const __m512 inv = _mm512_set1_ps(inv_sum[g]);
    if (a.q_elem == Elem::F32) {
      float* out = static_cast<float*>(a.out) + o;
      for (int64_t c = 0; c < nc; ++c)
        _mm512_mask_storeu_ps(out + 16 * c, chunk_mask(c, nc, tail), _mm512_mul_ps(_mm512_loadu_ps(acc + 16 * c), inv));
    } else {
      uint16_t* out = static_cast<uint16_t*>(a.out) + o;
      for (int64_t i = 0; i < d; ++i) out[i] = f32_to_bf16(acc[i] * inv_sum[g]);
    }
  }
}

template <typename QT, typename KT>
void run(const DecodeAttentionArgs& a, int64_t begin, int64_t end, void* scratch) {
  const DecodeScratch s = carve_scratch(a, scratch);
  for_each_head_block(a, begin, end, [&](int64_t b, int64_t h, int64_t kvh, int64_t n) {
    head_block<QT, KT>(a, b, h, kvh, n, s);
  });
}

}  // namespace

void decode_attention_avx512(const DecodeAttentionArgs& a, int64_t bh_begin, int64_t bh_end, void* scratch) {
  const bool q16 = a.q_elem == Elem::BF16, kv16 = a.kv_elem == Elem::BF16;
  if (!q16 && !kv16) run<float, float>(a, bh_begin, bh_end, scratch);
  if (!q16 && kv16) run<float, uint16_t>(a, bh_begin, bh_end, scratch);
  if (q16 && !kv16) run<uint16_t, float>(a, bh_begin, bh_end, scratch);
  if (q16 && kv16) run<uint16_t, uint16_t>(a, bh_begin, bh_end, scratch);
}

}  // namespace troupe::kernels::cpu
