// The portable decode-attention loops (cpu/decode_attention_body.hpp) built for AVX2 +
// FMA, run only where the CPU has them. x86 only.
#if defined(__x86_64__) || defined(__i386__)
// Headers first, for the baseline: their inline functions must not be AVX2 builds that
// the linker could pick for the whole program.
#include <cmath>
#include <limits>

#include "cpu/decode_attention.hpp"

#pragma GCC target("avx2,fma")

#include "cpu/decode_attention_body.hpp"

namespace troupe::kernels::cpu {

void decode_attention_avx2(const DecodeAttentionArgs& a, int64_t bh_begin, int64_t bh_end, void* scratch) {
  run_decode_attention(a, bh_begin, bh_end, scratch);
}

}  // namespace troupe::kernels::cpu
#endif
