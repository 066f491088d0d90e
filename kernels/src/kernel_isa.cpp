#include "kernel_isa.hpp"

#include <cstdlib>
#include <cstring>

#include <troupe/kernels/cpu_features.hpp>

namespace troupe::kernels {

cpu::Isa kernel_isa() {
  static const cpu::Isa isa = [] {
    if (cpu_features().avx512) return cpu::Isa::Avx512;
    // cpu_features() is all off under TROUPE_KERNELS_PORTABLE: keep AVX2 off too.
    const char* portable = std::getenv("TROUPE_KERNELS_PORTABLE");
    if (portable && *portable && std::strcmp(portable, "0") != 0) return cpu::Isa::Baseline;
#ifdef TROUPE_KERNELS_X86_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return cpu::Isa::Avx2;
#endif
    return cpu::Isa::Baseline;
  }();
  return isa;
}

}  // namespace troupe::kernels
