#include "cuda/decode_attention_cuda.hpp"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "cuda/decode_attention.cuh"
#include "cuda/launch_check.hpp"

namespace troupe::kernels::cuda {
namespace {

constexpr const char* kOp = "decode_attention";

bool attn_dtype(torch::ScalarType t) { return t == torch::kFloat32 || t == torch::kBFloat16; }

FloatDType to_dtype(torch::ScalarType t) { return t == torch::kBFloat16 ? FloatDType::BF16 : FloatDType::F32; }

/// The cache with its last dim contiguous (a copy only when it is not).
torch::Tensor inner_contiguous(const torch::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); }

}  // namespace

torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                               int64_t length, const torch::Tensor& key_mask, double scale) {
  TORCH_CHECK(q.defined() && q.dim() == 3, kOp, ": q must be (B, H, D), got ", q.defined() ? q.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(k_cache.defined() && v_cache.defined() && k_cache.dim() == 4 && k_cache.sizes() == v_cache.sizes(), kOp,
              ": k_cache and v_cache must be (B, H_kv, C, D) alike");
  const int64_t b = q.size(0), h = q.size(1), d = q.size(2);
  const int64_t h_kv = k_cache.size(1), c = k_cache.size(2);
  TORCH_CHECK(k_cache.size(0) == b && k_cache.size(3) == d, kOp, ": q is ", q.sizes(), " but the cache is ",
              k_cache.sizes());
  TORCH_CHECK(h_kv > 0 && h % h_kv == 0, kOp, ": ", h, " query heads do not share ", h_kv, " KV heads evenly");
  TORCH_CHECK(d > 0 && d <= kDecodeAttentionMaxHeadDim, kOp, ": head dim ", d, " is not in [1, ",
              kDecodeAttentionMaxHeadDim, "]");
  TORCH_CHECK(length >= 1 && length <= c, kOp, ": length ", length, " is not in [1, ", c, "]");
  TORCH_CHECK(length <= kDecodeAttentionMaxLength, kOp, ": length ", length, " is over ", kDecodeAttentionMaxLength);
  TORCH_CHECK(attn_dtype(q.scalar_type()), kOp, ": q must be fp32 or bf16, got ", q.scalar_type());
  TORCH_CHECK(attn_dtype(k_cache.scalar_type()) && k_cache.scalar_type() == v_cache.scalar_type(), kOp,
              ": k_cache and v_cache must be one dtype, fp32 or bf16, got ", k_cache.scalar_type(), " and ",
              v_cache.scalar_type());
  if (key_mask.defined()) {
    TORCH_CHECK(key_mask.dim() == 2 && key_mask.size(0) == b && key_mask.size(1) >= length, kOp,
                ": key_mask must be (B, L') with L' >= length = ", length, ", got ", key_mask.sizes());
    TORCH_CHECK(at::isIntegralType(key_mask.scalar_type(), /*includeBool=*/true), kOp,
                ": key_mask must be an integer or bool tensor, got ", key_mask.scalar_type());
  }
  const auto device = q.device();
  TORCH_CHECK(q.is_cuda() && k_cache.device() == device && v_cache.device() == device &&
                  (!key_mask.defined() || key_mask.device() == device),
              kOp, ": q, the caches and the mask must be on one CUDA device");
  const c10::cuda::CUDAGuard guard(device);

  const auto qc = q.contiguous();  // (B, H, D)
  const auto kc = inner_contiguous(k_cache), vc = inner_contiguous(v_cache);
  auto out = torch::empty_like(qc);  // (B, H, D)
  if (b == 0 || h == 0) return out;

  DecodeAttentionArgs a;
  a.q = qc.data_ptr();
  a.q_dtype = to_dtype(qc.scalar_type());
  a.k = kc.data_ptr();
  a.v = vc.data_ptr();
  a.kv_dtype = to_dtype(kc.scalar_type());
  a.k_stride_b = kc.stride(0), a.k_stride_h = kc.stride(1), a.k_stride_s = kc.stride(2);
  a.v_stride_b = vc.stride(0), a.v_stride_h = vc.stride(1), a.v_stride_s = vc.stride(2);
  torch::Tensor mask;
  if (key_mask.defined()) {
    // Bytes, int32 and int64 are read in place; other integer types as int32.
    mask = key_mask;
    switch (mask.scalar_type()) {
      case torch::kBool:
      case torch::kByte:
      case torch::kChar: a.mask_dtype = MaskDType::U8; break;
      case torch::kInt: a.mask_dtype = MaskDType::I32; break;
      case torch::kLong: a.mask_dtype = MaskDType::I64; break;
      default:
        mask = mask.to(torch::kInt);
        a.mask_dtype = MaskDType::I32;
    }
    if (mask.stride(1) != 1) mask = mask.contiguous();
    a.key_mask = mask.data_ptr();
    a.mask_stride_b = mask.stride(0);
  }
  a.out = out.data_ptr();
  a.batch = b, a.heads = h, a.kv_heads = h_kv, a.head_dim = d, a.length = length;
  a.scale = static_cast<float>(scale);

  const int64_t ws_floats = decode_attention_workspace_floats(a);
  torch::Tensor ws;
  if (ws_floats > 0) ws = torch::empty({ws_floats}, qc.options().dtype(torch::kFloat32));
  cuda::decode_attention(a, ws_floats > 0 ? ws.data_ptr<float>() : nullptr, at::cuda::getCurrentCUDAStream());
  check_launch(kOp);
  return out;
}

}  // namespace troupe::kernels::cuda
