#pragma once
// The instruction sets a portable kernel source is compiled for. Each raw kernel of
// this kind is one source (GCC/Clang vector types or plain loops) built up to three
// times through target attributes; the launcher picks one (src/kernel_isa.hpp).
#include <cstdint>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define TROUPE_KERNELS_X86_CLONES 1
#define TROUPE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TROUPE_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
#else
#define TROUPE_TARGET_AVX2
#define TROUPE_TARGET_AVX512
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TROUPE_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TROUPE_ALWAYS_INLINE inline
#endif

namespace troupe::kernels::cpu {

enum class Isa : int {
  Baseline = 0,  ///< what the compiler targets by default (SSE2 on x86-64)
  Avx2 = 1,      ///< AVX2 with FMA
  Avx512 = 2,    ///< AVX-512 F, BW, VL, DQ
};

}  // namespace troupe::kernels::cpu
