// Portable decode attention: per block of query heads, scores over the attended
// positions (one pass over the keys), softmax in fp32, then one pass over the values.
// Plain loops written so the compiler vectorises them for the baseline target.
#include "cpu/decode_attention.hpp"

#include <cmath>
#include <limits>

namespace troupe::kernels::cpu {
namespace {

template <typename T>
inline float elem(const T* p, int64_t i);
template <>
inline float elem<float>(const float* p, int64_t i) { return p[i]; }
template <>
inline float elem<uint16_t>(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }

/// q . k over d values. Sixteen lane sums rather than one: a single float sum is a
/// chain the compiler may not reorder (so would not vectorise) without -ffast-math.
template <typename KT>
inline float dot(const float* q, const KT* k, int64_t d) {
  float lanes[16] = {};
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) {
    for (int j = 0; j < 16; ++j) lanes[j] += q[i + j] * elem(k, i + j);
  }
  for (int j = 0; i + j < d; ++j) lanes[j] += q[i + j] * elem(k, i + j);
  // Fixed-width halvings (a loop over the width would not vectorise).
  for (int j = 0; j < 8; ++j) lanes[j] += lanes[j + 8];
  for (int j = 0; j < 4; ++j) lanes[j] += lanes[j + 4];
  return (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
}

/// out[0, w) = sum over the attended rows t of p[t] v[t][0, w), w <= 16, the sums in a
/// local block the compiler keeps in registers across the rows.
template <typename KT>
inline void weighted_rows(const float* p, const int32_t* positions, int64_t count, const KT* v, int64_t stride,
                          int64_t w, float* out) {
  float block[16] = {};
  if (w == 16) {
    for (int64_t t = 0; t < count; ++t) {
      const KT* row = v + positions[t] * stride;
      for (int j = 0; j < 16; ++j) block[j] += p[t] * elem(row, j);
    }
  } else {
    for (int64_t t = 0; t < count; ++t) {
      const KT* row = v + positions[t] * stride;
      for (int64_t j = 0; j < w; ++j) block[j] += p[t] * elem(row, j);
    }
  }
  for (int64_t j = 0; j < w; ++j) out[j] = block[j];
}

/// One block: query heads [h, h + n) of row b, all reading key/value head kvh.
template <typename QT, typename KT>
void head_block(const DecodeAttentionArgs& a, int64_t b, int64_t h, int64_t kvh, int64_t n, const DecodeScratch& s) {
  const int64_t d = a.head_dim, dp = padded_head_dim(d);
  const int64_t count = allowed_positions(a, b, s.positions);
  const auto* q = static_cast<const QT*>(a.q);
  const auto* k = static_cast<const KT*>(a.k) + b * a.k_stride_b + kvh * a.k_stride_h;
  const auto* v = static_cast<const KT*>(a.v) + b * a.v_stride_b + kvh * a.v_stride_h;

  for (int64_t g = 0; g < n; ++g) {
    const QT* qrow = q + b * a.q_stride_b + (h + g) * a.q_stride_h;
    for (int64_t i = 0; i < d; ++i) s.q[g * dp + i] = elem(qrow, i);
  }
  // Scores (n, count): each key row read once for the whole block.
  for (int64_t t = 0; t < count; ++t) {
    const KT* krow = k + s.positions[t] * a.k_stride_s;
    for (int64_t g = 0; g < n; ++g) s.scores[g * count + t] = dot(s.q + g * dp, krow, d) * a.scale;
  }
  // Softmax numerators in place; the division by the sum comes at the end.
  float inv_sum[kMaxHeadBlock];
  for (int64_t g = 0; g < n; ++g) {
    float* sc = s.scores + g * count;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t t = 0; t < count; ++t) m = sc[t] > m ? sc[t] : m;
    float sum = 0.f;
    for (int64_t t = 0; t < count; ++t) {
      sc[t] = std::exp(sc[t] - m);
      sum += sc[t];
    }
    inv_sum[g] = 1.f / sum;
  }
  // Values 16 columns at a time: the rows are read again per block, from cache.
  for (int64_t g = 0; g < n; ++g) {
    for (int64_t i = 0; i < d; i += 16) {
      weighted_rows(s.scores + g * count, s.positions, count, v + i, a.v_stride_s, d - i < 16 ? d - i : 16,
                    s.acc + g * dp + i);
    }
  }
  for (int64_t g = 0; g < n; ++g) {
    const int64_t o = (b * a.heads + h + g) * d;
    const float* acc = s.acc + g * dp;
    if (a.q_elem == Elem::F32) {
      float* out = static_cast<float*>(a.out) + o;
      for (int64_t i = 0; i < d; ++i) out[i] = acc[i] * inv_sum[g];
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

int64_t decode_attention_scratch_bytes(const DecodeAttentionArgs& a) { return scratch_bytes(a); }

void decode_attention(const DecodeAttentionArgs& a, int64_t bh_begin, int64_t bh_end, void* scratch) {
  const bool q16 = a.q_elem == Elem::BF16, kv16 = a.kv_elem == Elem::BF16;
  if (!q16 && !kv16) run<float, float>(a, bh_begin, bh_end, scratch);
  if (!q16 && kv16) run<float, uint16_t>(a, bh_begin, bh_end, scratch);
  if (q16 && !kv16) run<uint16_t, float>(a, bh_begin, bh_end, scratch);
  if (q16 && kv16) run<uint16_t, uint16_t>(a, bh_begin, bh_end, scratch);
}

}  // namespace troupe::kernels::cpu
