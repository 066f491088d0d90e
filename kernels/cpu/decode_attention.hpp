#pragma once
// Raw decode-attention kernels behind <troupe/kernels/decode_attention.hpp>. No
// LibTorch here: the launcher (src/decode_attention.cpp) checks shapes, makes the last
// dimensions contiguous and splits the query heads of the flattened (B, H) over
// threads; each call computes the query heads [bh_begin, bh_end).
//   q    (B, H, D)         fp32 or bf16 (uint16 bits), strides in elements, last one 1
//   k, v (B, H_kv, C, D)   fp32 or bf16, positions [0, length) read, last stride 1
//   mask (B, L')           integers of `mask_bytes` bytes (0 = padding), or null
//   row_lengths (B)        each row's own length (<= length), or null (all `length`)
//   out  (B, H, D)         contiguous, in q's element type
// Query heads of one key/value head that fall in the same call are computed together,
// so each cached row is read once for all of them (grouped-query attention).
#include <cstdint>
#include <cstring>

namespace troupe::kernels::cpu {

enum class Elem : int { F32 = 0, BF16 };

struct DecodeAttentionArgs {
  int64_t batch = 0, heads = 0, kv_heads = 0, head_dim = 0, length = 0;
  float scale = 1.f;
  const void* q = nullptr;
  Elem q_elem = Elem::F32;
  int64_t q_stride_b = 0, q_stride_h = 0;
  const void* k = nullptr;
  const void* v = nullptr;
  Elem kv_elem = Elem::F32;
  int64_t k_stride_b = 0, k_stride_h = 0, k_stride_s = 0;
  int64_t v_stride_b = 0, v_stride_h = 0, v_stride_s = 0;
  const void* mask = nullptr;
  int mask_bytes = 1;  // 1, 2, 4 or 8
  int64_t mask_stride_b = 0, mask_stride_s = 1;
  const int64_t* row_lengths = nullptr;
  void* out = nullptr;
};

/// Query heads computed together at most (the group of one key/value head is split
/// into blocks of this many).
constexpr int64_t kMaxHeadBlock = 8;

/// Bytes of scratch one call of either kernel needs.
int64_t decode_attention_scratch_bytes(const DecodeAttentionArgs& a);

void decode_attention(const DecodeAttentionArgs& a, int64_t bh_begin, int64_t bh_end, void* scratch);
void decode_attention_avx512(const DecodeAttentionArgs& a, int64_t bh_begin, int64_t bh_end, void* scratch);

// Helpers both kernels share. Internal linkage on purpose: the AVX-512 file is compiled
// with other target flags, and an inline function with external linkage could have its
// AVX-512 copy picked by the linker for the portable kernel too.
namespace {

inline float bf16_to_f32(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

/// Round to nearest even, as torch converts fp32 to bf16 (NaN stays a quiet NaN).
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

/// Whether position s of row b may be attended: a real token, or the newest one.
inline bool key_allowed(const DecodeAttentionArgs& a, int64_t b, int64_t s, int64_t newest) {
  if (!a.mask || s == newest) return true;
  const auto* p = static_cast<const unsigned char*>(a.mask) + (b * a.mask_stride_b + s * a.mask_stride_s) * a.mask_bytes;
  switch (a.mask_bytes) {
    case 1: return *p != 0;
    case 2: { uint16_t x; std::memcpy(&x, p, 2); return x != 0; }
    case 4: { uint32_t x; std::memcpy(&x, p, 4); return x != 0; }
    default: { uint64_t x; std::memcpy(&x, p, 8); return x != 0; }
  }
}

/// Fills `positions` with the positions row b may attend, in order; returns how many.
/// Only these are read, so a row's result is the same whatever the other rows hold.
inline int64_t allowed_positions(const DecodeAttentionArgs& a, int64_t b, int32_t* positions) {
  const int64_t length = a.row_lengths ? a.row_lengths[b] : a.length;
  int64_t n = 0;
  for (int64_t s = 0; s < length; ++s) {
    if (key_allowed(a, b, s, length - 1)) positions[n++] = static_cast<int32_t>(s);
  }
  return n;
}

/// Calls f(b, h, kv_head, n) for the runs of at most kMaxHeadBlock consecutive query
/// heads of [begin, end) that share a row and a key/value head.
template <typename F>
inline void for_each_head_block(const DecodeAttentionArgs& a, int64_t begin, int64_t end, F&& f) {
  const int64_t ratio = a.heads / a.kv_heads;
  for (int64_t bh = begin; bh < end;) {
    const int64_t b = bh / a.heads, h = bh % a.heads, kvh = h / ratio;
    int64_t n = (kvh + 1) * ratio - h;
    if (end - bh < n) n = end - bh;
    if (kMaxHeadBlock < n) n = kMaxHeadBlock;
    f(b, h, kvh, n);
    bh += n;
  }
}

/// Head dim rounded up to whole 16-float vectors (scratch rows are padded to it).
inline int64_t padded_head_dim(int64_t d) { return (d + 15) / 16 * 16; }

/// The scratch of one call, carved from decode_attention_scratch_bytes() bytes.
struct DecodeScratch {
  int32_t* positions;  // (length) attended positions of the row
  float* scores;       // (kMaxHeadBlock, length) scores, then exp(score - max)
  float* q;            // (kMaxHeadBlock, Dp) the block's queries in fp32, zero padded
  float* acc;          // (kMaxHeadBlock, Dp) weighted sums of values
};

inline int64_t round_up_64(int64_t bytes) { return (bytes + 63) / 64 * 64; }

inline DecodeScratch carve_scratch(const DecodeAttentionArgs& a, void* scratch) {
  auto* p = static_cast<unsigned char*>(scratch);
  const int64_t dp = padded_head_dim(a.head_dim);
  DecodeScratch s;
  s.positions = reinterpret_cast<int32_t*>(p);
  p += round_up_64(a.length * 4);
  s.scores = reinterpret_cast<float*>(p);
  p += round_up_64(kMaxHeadBlock * a.length * 4);
  s.q = reinterpret_cast<float*>(p);
  p += round_up_64(kMaxHeadBlock * dp * 4);
  s.acc = reinterpret_cast<float*>(p);
  return s;
}

inline int64_t scratch_bytes(const DecodeAttentionArgs& a) {
  const int64_t dp = padded_head_dim(a.head_dim);
  return round_up_64(a.length * 4) + round_up_64(kMaxHeadBlock * a.length * 4) + 2 * round_up_64(kMaxHeadBlock * dp * 4);
}

}  // namespace

}  // namespace troupe::kernels::cpu
