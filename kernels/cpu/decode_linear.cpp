// Portable decode-linear kernels: the packed layouts read in order, one panel of 16
// output features at a time (the compiler vectorises the inner lane loop).
#include "cpu/decode_linear.hpp"

#include <cstring>

#include "cpu/activation.hpp"

namespace troupe::kernels::cpu {
namespace {

inline float bf16_low(uint32_t pair) {
  const uint32_t bits = pair << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline float bf16_high(uint32_t pair) {
  const uint32_t bits = pair & 0xffff0000u;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// acc[16] = x_row . panel, fp32 layout (K, 16).
inline void dot_panel_f32(const float* x, const float* panel, int64_t k, float* acc) {
  for (int j = 0; j < kPanel; ++j) acc[j] = 0.f;
  for (int64_t i = 0; i < k; ++i) {
    const float xv = x[i];
    const float* w = panel + i * kPanel;
    for (int j = 0; j < kPanel; ++j) acc[j] += xv * w[j];
  }
}

/// acc[16] = x_row . panel, bf16 layout (K2, 16, 2).
inline void dot_panel_bf16(const uint32_t* xb, const uint32_t* panel, int64_t k2, float* acc) {
  for (int j = 0; j < kPanel; ++j) acc[j] = 0.f;
  for (int64_t i = 0; i < k2; ++i) {
    const float x0 = bf16_low(xb[i]), x1 = bf16_high(xb[i]);
    const uint32_t* w = panel + i * kPanel;
    for (int j = 0; j < kPanel; ++j) acc[j] += x0 * bf16_low(w[j]) + x1 * bf16_high(w[j]);
  }
}

inline void store(const float* acc, const DecodeLinearArgs& a, int64_t row, int64_t p) {
  const int64_t n0 = p * kPanel;
  const int64_t count = a.n - n0 < kPanel ? a.n - n0 : kPanel;
  float* y = a.y + row * a.ldy + n0;
  for (int64_t j = 0; j < count; ++j) y[j] = apply_act(a.act, acc[j] + (a.bias ? a.bias[n0 + j] : 0.f));
}

inline void store_gated(const float* g, const float* u, const DecodeLinearArgs& a, int64_t row, int64_t p) {
  const int64_t n0 = p * kPanel;
  const int64_t count = a.n - n0 < kPanel ? a.n - n0 : kPanel;
  float* y = a.y + row * a.ldy + n0;
  for (int64_t j = 0; j < count; ++j) y[j] = apply_act(Act::Silu, g[j]) * u[j];
}

}  // namespace

void decode_linear_f32(const float* x, const float* w, const DecodeLinearArgs& a, int64_t p_begin, int64_t p_end) {
  float acc[kPanel];
  for (int64_t p = p_begin; p < p_end; ++p)
    for (int64_t r = 0; r < a.m; ++r) {
      dot_panel_f32(x + r * a.ldx, w + p * a.k * kPanel, a.k, acc);
      store(acc, a, r, p);
    }
}

void decode_linear_bf16(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a, int64_t p_begin,
                        int64_t p_end) {
  const int64_t k2 = (a.k + 1) / 2;
  float acc[kPanel];
  for (int64_t p = p_begin; p < p_end; ++p)
    for (int64_t r = 0; r < a.m; ++r) {
      dot_panel_bf16(xb + r * a.ldx, w + p * k2 * kPanel, k2, acc);
      store(acc, a, r, p);
    }
}

void decode_gated_f32(const float* x, const float* g, const float* u, const DecodeLinearArgs& a, int64_t p_begin,
                      int64_t p_end) {
  float gate[kPanel], up[kPanel];
  for (int64_t p = p_begin; p < p_end; ++p)
    for (int64_t r = 0; r < a.m; ++r) {
      dot_panel_f32(x + r * a.ldx, g + p * a.k * kPanel, a.k, gate);
      dot_panel_f32(x + r * a.ldx, u + p * a.k * kPanel, a.k, up);
      store_gated(gate, up, a, r, p);
    }
}

void decode_gated_bf16(const uint32_t* xb, const uint32_t* g, const uint32_t* u, const DecodeLinearArgs& a,
                       int64_t p_begin, int64_t p_end) {
  const int64_t k2 = (a.k + 1) / 2;
  float gate[kPanel], up[kPanel];
  for (int64_t p = p_begin; p < p_end; ++p)
    for (int64_t r = 0; r < a.m; ++r) {
      dot_panel_bf16(xb + r * a.ldx, g + p * k2 * kPanel, k2, gate);
      dot_panel_bf16(xb + r * a.ldx, u + p * k2 * kPanel, k2, up);
      store_gated(gate, up, a, r, p);
    }
}

}  // namespace troupe::kernels::cpu
