// Portable next-token choice, per row:
//   s = logits / T (fp32, as today's path divides)
//   top-k: the k-th largest s, by selection on a copy (no sort); ties with it stay
//   top-p: the smallest value t whose strictly larger tokens hold less than p of the
//          probability, found by a weighted quickselect (no sort); ties with t stay
//   draw:  argmax of exp(s - max) / q over the kept tokens, 0 / q elsewhere: torch's
//          multinomial takes argmax(p / q) and p is that numerator over a common sum.
// The kept set is always {s >= threshold}: both filters cut by value.
#include "cpu/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

namespace troupe::kernels::cpu {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

/// e^x for x <= 0 (callers pass s - max) to about 2 ulp, branch-free so the loops that
/// call it vectorise: x = n ln2 + r, Cephes' polynomial for e^r, 2^n built in the
/// exponent bits. x below -87 (-inf too) counts as -87: weights under e^-87 of the
/// largest matter to no sum or draw.
inline float exp_approx(float x) {
  // The clamp on the bits (as unsigned, negative floats order by magnitude): a float
  // comparison may trap, which keeps GCC from vectorising the loop.
  uint32_t bits_x;
  std::memcpy(&bits_x, &x, sizeof bits_x);
  const uint32_t minus_87 = 0xc2ae0000u;
  bits_x = bits_x > minus_87 ? minus_87 : bits_x;
  std::memcpy(&x, &bits_x, sizeof x);
  const float shifter = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer
  const float shifted = x * 1.44269504088896341f + shifter;
  const float n = shifted - shifter;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  // n itself sits in the low mantissa bits of `shifted` (no float-to-int conversion).
  int32_t shifted_bits, shifter_bits;
  std::memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
  std::memcpy(&shifter_bits, &shifter, sizeof shifter_bits);
  const int32_t bits = (shifted_bits - shifter_bits + 127) * (1 << 23);
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/// The k-th largest of s (1 <= k < n), counting repeated values.
float kth_largest(const float* s, int64_t n, int64_t k, std::vector<float>& buf) {
  if (k * 16 <= n) {
    // A min-heap of the k largest so far: most values fail one comparison with its top.
    buf.assign(s, s + k);
    std::make_heap(buf.begin(), buf.end(), std::greater<float>());
    for (int64_t i = k; i < n; ++i) {
      if (s[i] > buf.front()) {
        std::pop_heap(buf.begin(), buf.end(), std::greater<float>());
        buf.back() = s[i];
        std::push_heap(buf.begin(), buf.end(), std::greater<float>());
      }
    }
    return buf.front();
  }
  buf.assign(s, s + n);
  std::nth_element(buf.begin(), buf.begin() + (k - 1), buf.end(), std::greater<float>());
  return buf[static_cast<size_t>(k - 1)];
}

/// Top-p's cut: the smallest candidate value t with mass(value > t) < target, or `top`
/// (the largest value: Hugging Face keeps at least one token) when there is none.
/// A quickselect whose side is chosen by mass: expected linear time. Reorders c.
float top_p_threshold(SampleScratch::Candidate* c, int64_t n, double target, float top) {
  float best = top;
  double above = 0.0;  // mass of the candidates larger than all of [lo, hi)
  int64_t lo = 0, hi = n;
  while (lo < hi && above < target) {
    const float x = c[lo].value, y = c[lo + (hi - lo) / 2].value, z = c[hi - 1].value;
    const float pivot = std::max(std::min(x, y), std::min(std::max(x, y), z));  // median of three
    // [lo, gt) > pivot, [gt, i) == pivot, [lt, hi) < pivot.
    int64_t gt = lo, i = lo, lt = hi;
    while (i < lt) {
      if (c[i].value > pivot) {
        std::swap(c[gt++], c[i++]);
      } else if (c[i].value < pivot) {
        std::swap(c[i], c[--lt]);
      } else {
        ++i;
      }
    }
    double mass_gt = 0.0, mass_eq = 0.0;
    for (int64_t j = lo; j < gt; ++j) mass_gt += c[j].weight;
    for (int64_t j = gt; j < lt; ++j) mass_eq += c[j].weight;
    if (above + mass_gt < target) {
      best = pivot;  // kept; smaller values may be too
      above += mass_gt + mass_eq;
      lo = lt;
    } else {
      hi = gt;  // cut: the answer is larger
    }
  }
  return best;
}

}  // namespace

int64_t argmax_row(const float* x, int64_t stride, int64_t n) {
  int64_t best = 0;
  float best_value = x[0];
  if (best_value != best_value) return 0;
  for (int64_t i = 1; i < n; ++i) {
    const float v = x[i * stride];
    if (v != v) return i;
    if (v > best_value) {
      best_value = v;
      best = i;
    }
  }
  return best;
}

int64_t sample_row(const float* logits, int64_t stride, const double* u, const SampleArgs& a, SampleScratch& scratch) {
  const int64_t n = a.vocab;
  scratch.scores.resize(static_cast<size_t>(n));
  float* s = scratch.scores.data();
  const float t = a.temperature;
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) s[i] = logits[i] / t;
  } else {
    for (int64_t i = 0; i < n; ++i) s[i] = logits[i * stride] / t;
  }
  float top = -kInf;
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    nan |= s[i] != s[i];
    top = s[i] > top ? s[i] : top;
  }
  if (nan || !std::isfinite(top)) return -1;

  float threshold = -kInf;
  if (a.top_k > 0 && a.top_k < n) threshold = kth_largest(s, n, a.top_k, scratch.values);
  if (a.top_p < 1.0) {
    auto& c = scratch.candidates;
    c.clear();
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      if (s[i] >= threshold && s[i] > -kInf) {
        const float w = exp_approx(s[i] - top);
        c.push_back({s[i], w});
        total += w;
      }
    }
    threshold = std::max(threshold, top_p_threshold(c.data(), static_cast<int64_t>(c.size()), a.top_p * total, top));
  }
  // The race, in torch's terms: argmax of p / q with q = -log1p(-u) and p = 0 off the
  // kept set (0 / q, so NaN where q = 0 there, which torch's argmax takes first). The
  // logarithm costs more than all the rest, and -log1p(-u) >= u, so w / u bounds w / q
  // from above (with a margin for the roundings of log1p and of the fp32 results): a
  // token whose bound stays under the top token's own ratio can be neither the largest
  // nor tied with it, and only the few others take the logarithm. The numerators over
  // the whole row first (a loop that vectorises).
  scratch.values.resize(static_cast<size_t>(n));
  float* w = scratch.values.data();
  for (int64_t i = 0; i < n; ++i) w[i] = exp_approx(s[i] - top);
  int64_t top_index = 0;
  while (s[top_index] != top) ++top_index;
  const double floor = static_cast<double>(w[top_index] / exponential_from_uniform(u[top_index]));
  constexpr double kMargin = 1.0 + 0x1p-20;
  int64_t best = -1;
  float best_value = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    const bool kept = s[i] >= threshold && s[i] > -kInf;
    if (u[i] != 0.0 && (!kept || static_cast<double>(w[i]) / u[i] * kMargin < floor)) continue;
    const float q = exponential_from_uniform(u[i]);
    const float v = kept ? w[i] / q : (q == 0.f ? std::numeric_limits<float>::quiet_NaN() : 0.f);
    if (v != v) return i;
    if (best < 0 || v > best_value) {
      best = i;
      best_value = v;
    }
  }
  return best;
}

}  // namespace troupe::kernels::cpu
