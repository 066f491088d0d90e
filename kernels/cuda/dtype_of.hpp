#pragma once
// torch dtype -> the raw launchers' FloatDType (glue side, with LibTorch).
#include <optional>

#include <torch/types.h>

#include "cuda/float_dtype.hpp"

namespace troupe::kernels::cuda {

/// The FloatDType of fp32, bf16 and fp16; nullopt for any other dtype.
inline std::optional<FloatDType> float_dtype_of(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return FloatDType::F32;
    case torch::kBFloat16: return FloatDType::BF16;
    case torch::kFloat16: return FloatDType::F16;
    default: return std::nullopt;
  }
}

}  // namespace troupe::kernels::cuda
