#pragma once
/// Bitwise tensor comparison for IO tests: NaN payloads, -0.0 and denormals must survive a
/// round trip exactly, which torch::equal cannot tell.
#include <cstring>
#include <string>

#include <torch/torch.h>

#include <troupe/models/safetensors.hpp>

namespace troupe::test {

/// Same dtype, same shape, same bytes.
inline bool bitwise_equal(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  const size_t bytes = static_cast<size_t>(ca.numel() * ca.element_size());
  return bytes == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), bytes) == 0;
}

/// The first name whose tensor differs (or that only one map holds), or "" when equal.
inline std::string first_difference(const troupe::models::TensorMap& a, const troupe::models::TensorMap& b) {
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || !bitwise_equal(t, it->second)) return name;
  }
  for (const auto& [name, t] : b)
    if (a.count(name) == 0) return name;
  return "";
}

}  // namespace troupe::test
