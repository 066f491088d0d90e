#pragma once
// The element type behind a `const void*` handed to a raw CUDA launcher (the glue
// maps torch's dtype to it; the launcher picks the kernel instantiation).
namespace troupe::kernels::cuda {

enum class FloatDType : int { F32 = 0, BF16, F16 };

}  // namespace troupe::kernels::cuda
