// Portable decode attention, built for the baseline target (the loops are in
// cpu/decode_attention_body.hpp; cpu/decode_attention_avx2.cpp builds them for AVX2).
#include "cpu/decode_attention.hpp"

#include <cmath>
#include <limits>

#include "cpu/decode_attention_body.hpp"

namespace troupe::kernels::cpu {

int64_t decode_attention_scratch_bytes(const DecodeAttentionArgs& a) { return scratch_bytes(a); }

void decode_attention(const DecodeAttentionArgs& a, int64_t bh_begin, int64_t bh_end, void* scratch) {
  run_decode_attention(a, bh_begin, bh_end, scratch);
}

}  // namespace troupe::kernels::cpu
