// Fused AdamW, multi-tensor (apex's multi_tensor_apply scheme): one launch carries up
// to kMaxTensors tensors and kMaxBlocks chunks of 64K elements in its parameter
// space, so a model of hundreds of tensors steps in a handful of launches and needs
// no device-side table. A block updates one chunk in float4s (element-wise where a
// tensor's pointers are not 16-byte aligned, e.g. views into a flat buffer).
// The arithmetic follows torch's CUDA kernels op by op (each op's rounding, fma where
// torch's add/addcmul/addcdiv kernels contract, a multiply by 1/sqrt(bc2) for the
// division by a scalar), so it lands within an ulp or two of torch's AdamW.
#include "cuda/fused_adamw.cuh"

#include <cmath>

#include "cuda/fused_adamw_plan.hpp"

namespace troupe::kernels::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int64_t kChunk = 65536;
constexpr int kMaxTensors = 24;
constexpr int kMaxBlocks = 320;

struct TensorArgs {
  float* p;
  const float* g;
  float* m;
  float* v;
  __nv_bfloat16* copy;  // or null
  int64_t n;
  float step_size;    // lr / (1 - b1^step)
  float inv_bc2_sqrt;  // 1 / sqrt(1 - b2^step)
  bool vec;           // p, g, m, v 16-byte aligned and copy 8-byte aligned
};

/// Everything a launch needs, passed by value (about 3.2 KB of the 4 KB parameter space).
struct LaunchArgs {
  TensorArgs t[kMaxTensors];
  unsigned char block_tensor[kMaxBlocks];
  int block_chunk[kMaxBlocks];
  float decay;  // 1 - lr wd
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps;
};
static_assert(sizeof(LaunchArgs) <= 4000, "LaunchArgs must fit the kernel parameter space");

struct Elem {
  float p, m, v;
};

__device__ __forceinline__ Elem update(const LaunchArgs& a, const TensorArgs& t, float p, float g, float m, float v) {
  p = __fmul_rn(p, a.decay);
  m = fmaf(a.one_minus_beta1, g, __fmul_rn(m, a.beta1));
  v = fmaf(__fmul_rn(a.one_minus_beta2, g), g, __fmul_rn(v, a.beta2));
  const float denom = __fadd_rn(__fmul_rn(sqrtf(v), t.inv_bc2_sqrt), a.eps);
  p = fmaf(-t.step_size, __fdiv_rn(m, denom), p);
  return {p, m, v};
}

__global__ void __launch_bounds__(kThreads) adamw_kernel(const __grid_constant__ LaunchArgs a) {
  const TensorArgs& t = a.t[a.block_tensor[blockIdx.x]];
  const int64_t begin = static_cast<int64_t>(a.block_chunk[blockIdx.x]) * kChunk;
  const int64_t end = min(t.n, begin + kChunk);
  int64_t scalar_from = begin;
  if (t.vec) {
    // begin is a multiple of 4 (kChunk is): aligned float4s from there.
    const int64_t nv = (end - begin) / 4;
    for (int64_t j = threadIdx.x; j < nv; j += kThreads) {
      const int64_t i = begin + 4 * j;
      const float4 p = *reinterpret_cast<const float4*>(t.p + i);
      const float4 g = *reinterpret_cast<const float4*>(t.g + i);
      const float4 m = *reinterpret_cast<const float4*>(t.m + i);
      const float4 v = *reinterpret_cast<const float4*>(t.v + i);
      const Elem e0 = update(a, t, p.x, g.x, m.x, v.x);
      const Elem e1 = update(a, t, p.y, g.y, m.y, v.y);
      const Elem e2 = update(a, t, p.z, g.z, m.z, v.z);
      const Elem e3 = update(a, t, p.w, g.w, m.w, v.w);
      *reinterpret_cast<float4*>(t.p + i) = make_float4(e0.p, e1.p, e2.p, e3.p);
      *reinterpret_cast<float4*>(t.m + i) = make_float4(e0.m, e1.m, e2.m, e3.m);
      *reinterpret_cast<float4*>(t.v + i) = make_float4(e0.v, e1.v, e2.v, e3.v);
      if (t.copy) {
        __nv_bfloat162 lo = __floats2bfloat162_rn(e0.p, e1.p), hi = __floats2bfloat162_rn(e2.p, e3.p);
        uint2 bits;
        bits.x = *reinterpret_cast<const unsigned*>(&lo);
        bits.y = *reinterpret_cast<const unsigned*>(&hi);
        *reinterpret_cast<uint2*>(t.copy + i) = bits;
      }
    }
    scalar_from = begin + 4 * nv;
  }
  for (int64_t i = scalar_from + threadIdx.x; i < end; i += kThreads) {
    const Elem e = update(a, t, t.p[i], t.g[i], t.m[i], t.v[i]);
    t.p[i] = e.p;
    t.m[i] = e.m;
    t.v[i] = e.v;
    if (t.copy) t.copy[i] = __float2bfloat16_rn(e.p);
  }
}

bool aligned(const void* p, unsigned bytes) { return (reinterpret_cast<uintptr_t>(p) & (bytes - 1)) == 0; }

}  // namespace

void fused_adamw(const AdamWTensor* tensors, int64_t count, const AdamWScalars& h, cudaStream_t stream) {
  std::vector<int64_t> numels(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) numels[i] = tensors[i].numel;
  const auto plans = plan_adamw_launches(numels, kChunk, kMaxTensors, kMaxBlocks);

  LaunchArgs args{};
  // Scalars as torch's kernels see them: computed in double, used in fp32.
  args.decay = static_cast<float>(1.0 - h.lr * h.weight_decay);
  args.beta1 = static_cast<float>(h.beta1);
  args.one_minus_beta1 = static_cast<float>(1.0 - h.beta1);
  args.beta2 = static_cast<float>(h.beta2);
  args.one_minus_beta2 = static_cast<float>(1.0 - h.beta2);
  args.eps = static_cast<float>(h.eps);
  for (const auto& plan : plans) {
    for (size_t s = 0; s < plan.tensors.size(); ++s) {
      const AdamWTensor& in = tensors[plan.tensors[s]];
      const auto step = static_cast<double>(in.step);
      TensorArgs& t = args.t[s];
      t.p = in.param;
      t.g = in.grad;
      t.m = in.exp_avg;
      t.v = in.exp_avg_sq;
      t.copy = in.bf16_copy;
      t.n = in.numel;
      t.step_size = static_cast<float>(h.lr / (1.0 - std::pow(h.beta1, step)));
      t.inv_bc2_sqrt = 1.0f / static_cast<float>(std::sqrt(1.0 - std::pow(h.beta2, step)));
      t.vec = aligned(t.p, 16) && aligned(t.g, 16) && aligned(t.m, 16) && aligned(t.v, 16) &&
              (!t.copy || aligned(t.copy, 8));
    }
    for (size_t b = 0; b < plan.blocks.size(); ++b) {
      args.block_tensor[b] = static_cast<unsigned char>(plan.blocks[b].slot);
      args.block_chunk[b] = static_cast<int>(plan.blocks[b].chunk);
    }
    adamw_kernel<<<static_cast<unsigned>(plan.blocks.size()), kThreads, 0, stream>>>(args);
  }
}

}  // namespace troupe::kernels::cuda
