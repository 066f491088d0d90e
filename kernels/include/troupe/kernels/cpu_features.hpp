#pragma once
/// What the CPU this process runs on can do, asked once. The AVX-512 kernels run only
/// where `avx512` is true; `avx512_bf16` adds the bf16 dot product (vdpbf16ps).
namespace troupe::kernels {

struct CpuFeatures {
  bool avx512 = false;       ///< F, BW, VL, DQ
  bool avx512_bf16 = false;  ///< AVX512_BF16
};

/// The features of this CPU; TROUPE_KERNELS_PORTABLE=1 in the environment turns them
/// all off (to test and measure the portable kernels).
const CpuFeatures& cpu_features();

}  // namespace troupe::kernels
