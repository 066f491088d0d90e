#pragma once
// Raw decode-linear kernels over the packed layouts of <troupe/kernels/decode_linear.hpp>.
// No LibTorch here: the launcher (src/decode_linear.cpp) checks shapes, converts and
// splits the output panels over threads; each call computes panels [p_begin, p_end).
//   x    (M, K) fp32, row stride ldx       xb (M, K2) pairs of bf16 as uint32
//   w    fp32 (P, K, 16) / bf16 (P, K2, 16, 2), zero padded
//   bias (N) fp32 or null                  y  (M, N) fp32, row stride ldy
#include <cstdint>

namespace troupe::kernels::cpu {

/// The epilogue's activation; the same values as kernels::Activation.
enum class Act : int { None = 0, Relu, Gelu, GeluTanh, Silu };

struct DecodeLinearArgs {
  int64_t m = 0, k = 0, n = 0;
  int64_t ldx = 0, ldy = 0;
  const float* bias = nullptr;
  Act act = Act::None;
  float* y = nullptr;
};

// Each kernel comes as the portable build (no suffix), the same source built for AVX2 +
// FMA (_avx2; x86 only) and the AVX-512 kernel (_avx512, with vdpbf16ps for bf16).
void decode_linear_f32_avx2(const float* x, const float* w, const DecodeLinearArgs& a, int64_t p_begin, int64_t p_end);
void decode_linear_bf16_avx2(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a, int64_t p_begin,
                             int64_t p_end);
void decode_gated_f32_avx2(const float* x, const float* g, const float* u, const DecodeLinearArgs& a, int64_t p_begin,
                           int64_t p_end);
void decode_gated_bf16_avx2(const uint32_t* xb, const uint32_t* g, const uint32_t* u, const DecodeLinearArgs& a,
                            int64_t p_begin, int64_t p_end);

// fp32 weights.
void decode_linear_f32(const float* x, const float* w, const DecodeLinearArgs& a, int64_t p_begin, int64_t p_end);
void decode_linear_f32_avx512(const float* x, const float* w, const DecodeLinearArgs& a, int64_t p_begin,
                              int64_t p_end);
// bf16 weights, x as bf16 pairs (ldx counts uint32 pairs, k counts bf16 values).
void decode_linear_bf16(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a, int64_t p_begin,
                        int64_t p_end);
void decode_linear_bf16_avx512(const uint32_t* xb, const uint32_t* w, const DecodeLinearArgs& a, int64_t p_begin,
                               int64_t p_end);

// silu(x G^T) * (x U^T); a.bias and a.act are ignored.
void decode_gated_f32(const float* x, const float* g, const float* u, const DecodeLinearArgs& a, int64_t p_begin,
                      int64_t p_end);
void decode_gated_f32_avx512(const float* x, const float* g, const float* u, const DecodeLinearArgs& a,
                             int64_t p_begin, int64_t p_end);
void decode_gated_bf16(const uint32_t* xb, const uint32_t* g, const uint32_t* u, const DecodeLinearArgs& a,
                       int64_t p_begin, int64_t p_end);
void decode_gated_bf16_avx512(const uint32_t* xb, const uint32_t* g, const uint32_t* u, const DecodeLinearArgs& a,
                              int64_t p_begin, int64_t p_end);

/// Output features per panel.
constexpr int64_t kPanel = 16;

}  // namespace troupe::kernels::cpu
