#pragma once
// Scalar activations for the portable kernels (the epilogue of the AVX-512 ones
// computes the same functions with vector approximations, see vector_math.hpp).
#include <cmath>

#include "cpu/decode_linear.hpp"

namespace troupe::kernels::cpu {

inline float apply_act(Act act, float v) {
  switch (act) {
    case Act::None: return v;
    case Act::Relu: return v > 0.f ? v : 0.f;
    case Act::Gelu: return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f));
    case Act::GeluTanh: {
      const float inner = 0.7978845608028654f * (v + 0.044715f * v * v * v);
      return 0.5f * v * (1.f + std::tanh(inner));
    }
    case Act::Silu: return v / (1.f + std::exp(-v));
  }
  return v;
}

}  // namespace troupe::kernels::cpu
