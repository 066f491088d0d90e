#pragma once
// bf16 <-> fp32 for the portable kernels, as c10::BFloat16 converts: widening is exact,
// narrowing rounds to nearest even and turns every NaN into 0x7fc0.
#include <cstdint>
#include <cstring>

namespace troupe::kernels::cpu {

inline float bf16_to_f32(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// Branch free (a select between ready values), so loops over it vectorise.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint32_t rounded = (bits + ((bits >> 16) & 1u) + 0x7fffu) >> 16;
  return static_cast<uint16_t>(f != f ? 0x7fc0u : rounded);
}

}  // namespace troupe::kernels::cpu
