#include <troupe/kernels/decode_attention.hpp>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <memory>
#include <string>

#include <troupe/common/error.hpp>
#include <troupe/kernels/cpu_features.hpp>

#include "cpu/decode_attention.hpp"

#if defined(TROUPE_WITH_CUDA) && __has_include("cuda/decode_attention_cuda.hpp")
#include "cuda/decode_attention_cuda.hpp"
#define TROUPE_DECODE_ATTENTION_CUDA 1
#endif

namespace troupe::kernels {
namespace {

cpu::Elem elem_of(torch::ScalarType t) { return t == torch::kBFloat16 ? cpu::Elem::BF16 : cpu::Elem::F32; }

bool float_or_bf16(torch::ScalarType t) { return t == torch::kFloat32 || t == torch::kBFloat16; }

/// Dtypes and devices; shapes are TORCH_CHECKed by the caller.
void check_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& mask) {
  if (!float_or_bf16(q.scalar_type())) {
    throw Error(std::string("decode_attention: q must be fp32 or bf16, got ") + c10::toString(q.scalar_type()));
  }
  if (!float_or_bf16(k.scalar_type()) || v.scalar_type() != k.scalar_type()) {
    throw Error(std::string("decode_attention: k_cache and v_cache must both be fp32 or both bf16, got ") +
                c10::toString(k.scalar_type()) + " and " + c10::toString(v.scalar_type()));
  }
  if (mask.defined() && mask.is_floating_point()) {
    throw Error(std::string("decode_attention: key_mask must be an integer or bool tensor (1 = real token), got ") +
                c10::toString(mask.scalar_type()));
  }
  if (mask.defined() && mask.is_complex()) throw Error("decode_attention: key_mask must be an integer or bool tensor");
  if (k.device() != q.device() || v.device() != q.device() || (mask.defined() && mask.device() != q.device())) {
    throw Error("decode_attention: q, k_cache, v_cache and key_mask must be on one device, got q on " +
                q.device().str() + ", k_cache on " + k.device().str() + ", v_cache on " + v.device().str() +
                (mask.defined() ? ", key_mask on " + mask.device().str() : std::string()));
  }
}

/// The tensor itself when its last dimension is contiguous, else a contiguous copy.
torch::Tensor last_dim_contiguous(const torch::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

}  // namespace

torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                               int64_t length, const torch::Tensor& key_mask, double scale,
                               const torch::Tensor& row_lengths) {
  TORCH_CHECK(q.dim() == 3, "decode_attention: q must be (B, H, D), got ", q.sizes());
  TORCH_CHECK(k_cache.dim() == 4, "decode_attention: k_cache must be (B, H_kv, C, D), got ", k_cache.sizes());
  TORCH_CHECK(v_cache.sizes() == k_cache.sizes(), "decode_attention: v_cache ", v_cache.sizes(),
              " must match k_cache ", k_cache.sizes());
  const int64_t b = q.size(0), h = q.size(1), d = q.size(2);
  const int64_t h_kv = k_cache.size(1), capacity = k_cache.size(2);
  TORCH_CHECK(k_cache.size(0) == b && k_cache.size(3) == d, "decode_attention: k_cache ", k_cache.sizes(),
              " does not fit q ", q.sizes());
  TORCH_CHECK(h_kv > 0 && h % h_kv == 0, "decode_attention: ", h, " query heads are not a multiple of ", h_kv,
              " key/value heads");
  TORCH_CHECK(length >= 1 && length <= capacity, "decode_attention: length ", length, " outside [1, ", capacity,
              "] (the cache's capacity)");
  if (key_mask.defined()) {
    TORCH_CHECK(key_mask.dim() == 2 && key_mask.size(0) == b && key_mask.size(1) >= length,
                "decode_attention: key_mask must be (B, >= length) = (", b, ", >= ", length, "), got ",
                key_mask.sizes());
  }
  check_inputs(q, k_cache, v_cache, key_mask);
  torch::Tensor lengths;  // (B) int64, contiguous, on the CPU
  if (row_lengths.defined()) {
    TORCH_CHECK(row_lengths.dim() == 1 && row_lengths.size(0) == b, "decode_attention: row_lengths must be (B) = (", b,
                "), got ", row_lengths.sizes());
    if (!q.is_cpu()) throw Error("decode_attention: per-row lengths run on the CPU only, q is on " + q.device().str());
    lengths = row_lengths.to(torch::kLong).contiguous();
    if (b > 0) {
      const auto low = lengths.min().item<int64_t>(), high = lengths.max().item<int64_t>();
      TORCH_CHECK(low >= 1 && high <= length, "decode_attention: row_lengths must be in [1, ", length, "], got [",
                  low, ", ", high, "]");
    }
  }

  if (q.is_cuda()) {
#ifdef TROUPE_DECODE_ATTENTION_CUDA
    return cuda::decode_attention(q, k_cache, v_cache, length, key_mask, scale);
#else
    throw Error("decode_attention: no CUDA kernel built");
#endif
  }
  if (!q.is_cpu()) throw Error("decode_attention: no kernel for device " + q.device().str());

  auto out = torch::empty({b, h, d}, q.options());  // (B, H, D)
  if (out.numel() == 0) return out;
  // The caches are views into the model's preallocated storage: read them in place.
  const auto qc = last_dim_contiguous(q);
  const auto kc = last_dim_contiguous(k_cache);
  const auto vc = last_dim_contiguous(v_cache);

  cpu::DecodeAttentionArgs a;
  a.batch = b;
  a.heads = h;
  a.kv_heads = h_kv;
  a.head_dim = d;
  a.length = length;
  a.scale = static_cast<float>(scale);
  a.q = qc.data_ptr();
  a.q_elem = elem_of(qc.scalar_type());
  a.q_stride_b = qc.stride(0);
  a.q_stride_h = qc.stride(1);
  a.k = kc.data_ptr();
  a.v = vc.data_ptr();
  a.kv_elem = elem_of(kc.scalar_type());
  a.k_stride_b = kc.stride(0);
  a.k_stride_h = kc.stride(1);
  a.k_stride_s = kc.stride(2);
  a.v_stride_b = vc.stride(0);
  a.v_stride_h = vc.stride(1);
  a.v_stride_s = vc.stride(2);
  if (key_mask.defined()) {
    a.mask = key_mask.data_ptr();
    a.mask_bytes = static_cast<int>(key_mask.element_size());
    a.mask_stride_b = key_mask.stride(0);
    a.mask_stride_s = key_mask.stride(1);
  }
  if (lengths.defined()) a.row_lengths = lengths.data_ptr<int64_t>();
  a.out = out.data_ptr();

  const bool avx512 = cpu_features().avx512;
  const int64_t scratch_bytes = cpu::decode_attention_scratch_bytes(a);
  // A query head costs about 2 length D multiply-adds; below some 256k of them per task
  // the pool's wake-up costs more than it saves.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, 2 * length * d));
  at::parallel_for(0, b * h, grain, [&](int64_t begin, int64_t end) {
    std::unique_ptr<unsigned char[]> scratch(new unsigned char[static_cast<size_t>(scratch_bytes)]);
    if (avx512) {
      cpu::decode_attention_avx512(a, begin, end, scratch.get());
    } else {
      cpu::decode_attention(a, begin, end, scratch.get());
    }
  });
  return out;
}

}  // namespace troupe::kernels
