#include <troupe/kernels/cpu_features.hpp>

#include <cstdlib>
#include <cstring>

namespace troupe::kernels {

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
    const char* portable = std::getenv("TROUPE_KERNELS_PORTABLE");
    if (portable && std::strcmp(portable, "0") != 0 && *portable) return f;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
#endif
    return f;
  }();
  return features;
}

}  // namespace troupe::kernels
