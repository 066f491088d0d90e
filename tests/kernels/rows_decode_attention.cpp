// decode_attention rows: the kernel against SDPA over the first `length` positions.
// Cache positions past `length` hold NaN, so a kernel that reads them fails the row.
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <string>

#include <troupe/kernels/decode_attention.hpp>

#include "consistency_table.hpp"

namespace {

using troupe::test::ConsistencyOutputs;
using troupe::test::ConsistencyRow;

enum class Mask { None, LeftPadded, AllPadding };

struct AttentionCase {
  int64_t b, h, h_kv, d, length, capacity;
  torch::ScalarType q_dtype = torch::kFloat32, cache_dtype = torch::kFloat32;
  Mask mask = Mask::LeftPadded;
  torch::ScalarType mask_dtype = torch::kLong;
  bool strided_cache = false;  // caches as (B, C, H_kv, D) storage seen transposed
  double scale = 0.0;          // 0: 1 / sqrt(D)
  uint64_t seed = 0;
};

std::string name_of(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "fp32";
    case torch::kBFloat16: return "bf16";
    case torch::kLong: return "int64";
    case torch::kInt: return "int32";
    case torch::kBool: return "bool";
    default: return c10::toString(t);
  }
}

/// A cache (B, H_kv, C, D) whose positions [length, C) are NaN.
torch::Tensor make_cache(const AttentionCase& c, at::Generator& gen) {
  auto full = c.strided_cache ? torch::randn({c.b, c.capacity, c.h_kv, c.d}, gen).transpose(1, 2)
                              : torch::randn({c.b, c.h_kv, c.capacity, c.d}, gen);
  full.narrow(2, c.length, c.capacity - c.length).fill_(std::nan(""));
  if (c.cache_dtype == torch::kFloat32) return full;
  // Convert in place of the same layout, so the strided case stays strided.
  auto out = torch::empty_strided(full.sizes(), full.strides(), torch::TensorOptions().dtype(c.cache_dtype));
  return out.copy_(full);
}

/// (B, capacity) mask: row r has r * 5 left pads (capped below length), one extra row
/// of padding only when asked; padded positions past `length` are never read.
torch::Tensor make_mask(const AttentionCase& c) {
  if (c.mask == Mask::None) return {};
  auto mask = torch::ones({c.b, c.capacity}, torch::kLong);
  for (int64_t r = 0; r < c.b; ++r) {
    const int64_t pads = c.mask == Mask::AllPadding ? c.capacity : std::min<int64_t>(r * 5, c.length - 1);
    mask[r].narrow(0, 0, pads).fill_(0);
  }
  if (c.mask == Mask::LeftPadded && c.b > 1) mask[c.b - 1].fill_(0);  // the last row is all padding
  return mask.to(c.mask_dtype);
}

void add(std::vector<ConsistencyRow>& rows, const AttentionCase& c) {
  std::string shape = "B=" + std::to_string(c.b) + " H=" + std::to_string(c.h) + " H_kv=" + std::to_string(c.h_kv) +
                      " D=" + std::to_string(c.d) + " L=" + std::to_string(c.length) +
                      " C=" + std::to_string(c.capacity);
  if (c.mask == Mask::None) shape += " no mask";
  if (c.mask == Mask::LeftPadded) shape += " mask=" + name_of(c.mask_dtype) + " left pads, last row all padding";
  if (c.mask == Mask::AllPadding) shape += " mask=" + name_of(c.mask_dtype) + " all padding";
  if (c.strided_cache) shape += " strided cache";
  if (c.scale != 0.0) shape += " scale=" + std::to_string(c.scale);
  ConsistencyRow row;
  row.op = "decode_attention";
  row.shape = shape;
  row.dtype = "q " + name_of(c.q_dtype) + " cache " + name_of(c.cache_dtype);
  row.device = "cpu";
  // bf16 outputs: both round to bf16 (and SDPA's bf16 path rounds its weights too).
  row.max_nmse = c.q_dtype == torch::kBFloat16 ? 5e-5 : 1e-10;
  row.run = [c] {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);
    auto q = torch::randn({c.b, c.h, c.d}, gen).to(c.q_dtype);  // (B, H, D)
    auto k = make_cache(c, gen);                                   // (B, H_kv, C, D)
    auto v = make_cache(c, gen);
    auto mask = make_mask(c);
    const double scale = c.scale != 0.0 ? c.scale : 1.0 / std::sqrt(static_cast<double>(c.d));
    ConsistencyOutputs out;
    out.kernel.push_back(troupe::kernels::decode_attention(q, k, v, c.length, mask, scale));
    out.reference.push_back(troupe::kernels::reference::decode_attention(q, k, v, c.length, mask, scale));
    return out;
  };
  rows.push_back(std::move(row));
}

}  // namespace

TROUPE_CONSISTENCY_ROWS(rows) {
  const auto f32 = torch::kFloat32, bf16 = torch::kBFloat16;
  // OPT-125m's shape, one row, the first step (nothing cached before).
  add(rows, {1, 12, 12, 64, 1, 1, f32, f32, Mask::None, torch::kLong, false, 0.0, 1});
  add(rows, {1, 12, 12, 64, 17, 40, f32, f32, Mask::LeftPadded, torch::kLong, false, 0.0, 2});
  // GQA 4 and 8, D = 128 and 80, fp32 and bf16 caches.
  add(rows, {3, 8, 2, 128, 17, 32, f32, f32, Mask::LeftPadded, torch::kLong, false, 0.0, 3});
  add(rows, {3, 8, 1, 80, 300, 320, f32, bf16, Mask::LeftPadded, torch::kBool, false, 0.0, 4});
  add(rows, {3, 32, 4, 128, 300, 301, f32, f32, Mask::LeftPadded, torch::kInt, false, 0.0, 5});
  add(rows, {1, 16, 2, 128, 300, 300, bf16, bf16, Mask::LeftPadded, torch::kLong, false, 0.0, 6});
  add(rows, {3, 4, 4, 64, 17, 17, bf16, f32, Mask::LeftPadded, torch::kLong, false, 0.0, 7});
  add(rows, {3, 12, 12, 64, 300, 512, bf16, bf16, Mask::None, torch::kLong, false, 0.0, 8});
  // Rows that are all padding attend only the newest position.
  add(rows, {3, 12, 12, 64, 17, 40, f32, bf16, Mask::AllPadding, torch::kInt, false, 0.0, 9});
  add(rows, {1, 32, 4, 128, 1, 8, f32, f32, Mask::AllPadding, torch::kLong, false, 0.0, 10});
  // Caches seen through strides (the kernel reads them in place), another scale.
  add(rows, {2, 4, 4, 80, 300, 301, f32, f32, Mask::LeftPadded, torch::kLong, true, 0.3, 11});
  add(rows, {2, 8, 2, 64, 17, 20, f32, bf16, Mask::LeftPadded, torch::kLong, true, 0.0, 12});
  // D = 256 and a D that is no multiple of 16.
  add(rows, {2, 4, 2, 256, 17, 24, f32, f32, Mask::LeftPadded, torch::kLong, false, 0.0, 13});
  add(rows, {3, 6, 3, 72, 33, 40, f32, bf16, Mask::LeftPadded, torch::kBool, false, 0.0, 14});
  add(rows, {2, 6, 3, 72, 33, 40, bf16, bf16, Mask::LeftPadded, torch::kLong, false, 0.0, 15});
  // An empty batch.
  add(rows, {0, 4, 4, 64, 5, 8, f32, f32, Mask::LeftPadded, torch::kLong, false, 0.0, 16});
  add(rows, {0, 8, 1, 128, 5, 8, bf16, bf16, Mask::None, torch::kLong, false, 0.0, 17});
}
