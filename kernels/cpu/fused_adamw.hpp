#pragma once
// Raw AdamW kernels over one contiguous span of a tensor (no LibTorch): the launcher
// (src/fused_adamw.cpp) computes the step's scalars, splits every tensor into spans and
// shares the spans over threads.
//   p, g, m, v  (n) fp32: parameter, gradient, exp_avg, exp_avg_sq
//   bf16        (n) bf16 bits receiving the updated parameter, or null
#include <cstdint>

#include "cpu/isa.hpp"

namespace troupe::kernels::cpu {

/// One tensor's step, rounded to fp32 as torch rounds its double scalars:
///   p = p * decay                                   (when apply_decay)
///   m = fma(g, one_minus_beta1, m * beta1)
///   v = fma(one_minus_beta2 * g, g, v * beta2)
///   p = p + (neg_step_size * m) / (sqrt(v) / sqrt_bias_correction2 + eps)
/// which is torch's mul_, add_ (vectorised as an fma), addcmul_, div, add_ and addcdiv_
/// element for element. Every operation rounds once (IEEE, nothing contracted), in
/// every build alike.
struct AdamWScalars {
  bool apply_decay = false;
  float decay = 1;  ///< 1 - lr * weight_decay
  float beta1 = 0, one_minus_beta1 = 0;
  float beta2 = 0, one_minus_beta2 = 0;
  float sqrt_bias_correction2 = 1;  ///< sqrt(1 - beta2^step)
  float eps = 0;
  float neg_step_size = 0;  ///< -lr / (1 - beta1^step)
};

using AdamWKernel = void (*)(float* p, const float* g, float* m, float* v, uint16_t* bf16, int64_t n,
                             const AdamWScalars& s);

AdamWKernel adamw_kernel(Isa isa);

}  // namespace troupe::kernels::cpu
