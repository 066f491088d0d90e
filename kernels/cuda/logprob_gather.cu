// Log-prob gather, one block a row. Forward: one pass keeps, per thread, an online
// softmax state (max m, sum of e^(l - m), sum of e^(l - m) (l - m)) and merges them
// over the block: lse = m + log s and the entropy log s - t / s come out of the same
// pass, the (N, V) log-probs are never written. Backward: one pass writing
// d logits, plus one before it for sum p log p when the entropy has a gradient.
#include "cuda/logprob_gather.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/device/reduce.cuh"
#include "cuda/device/row.cuh"

namespace troupe::kernels::cuda {
namespace {

using device::kFullMask;
using device::to_float;

constexpr int kThreads = 256;

/// Online softmax over some elements: m their max, s = sum e^(l - m),
/// t = sum e^(l - m) (l - m) (relative to m, so no large terms cancel).
struct Soft {
  float m, s, t;
};

__device__ __forceinline__ void soft_add(Soft& a, float l) {
  if (isnan(l)) {
    a.s = NAN;  // as logsumexp: NaN in, NaN out
    return;
  }
  if (l > a.m) {
    if (a.s > 0.f) {  // rescale to the new max (s == 0: nothing to rescale, m may be -inf)
      const float c = expf(a.m - l);
      a.t = c * (a.t + (a.m - l) * a.s);
      a.s *= c;
    }
    a.m = l;
  }
  if (a.m == -INFINITY) return;  // l = -inf and nothing finite yet
  const float d = l - a.m;
  const float e = expf(d);
  if (e != 0.f) {  // l = -inf adds nothing (and 0 * -inf would be NaN)
    a.s += e;
    a.t = fmaf(e, d, a.t);
  }
}

__device__ __forceinline__ Soft soft_merge(const Soft& a, const Soft& b) {
  const float m = fmaxf(a.m, b.m);
  if (isnan(a.s) || isnan(b.s)) return Soft{m, NAN, NAN};
  Soft r{m, 0.f, 0.f};
  if (a.s > 0.f) {
    const float c = expf(a.m - m);
    r.s += a.s * c;
    r.t += c * (a.t + (a.m - m) * a.s);
  }
  if (b.s > 0.f) {
    const float c = expf(b.m - m);
    r.s += b.s * c;
    r.t += c * (b.t + (b.m - m) * b.s);
  }
  return r;
}

__device__ __forceinline__ Soft warp_soft(Soft a) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const Soft b{__shfl_xor_sync(kFullMask, a.m, o), __shfl_xor_sync(kFullMask, a.s, o),
                 __shfl_xor_sync(kFullMask, a.t, o)};
    a = soft_merge(a, b);
  }
  return a;
}

/// The block's merged state, in every thread.
__device__ __forceinline__ Soft block_soft(Soft a, Soft* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  a = warp_soft(a);
  if (lane == 0) scratch[warp] = a;
  __syncthreads();
  a = lane < warps ? scratch[lane] : Soft{-INFINITY, 0.f, 0.f};
  return warp_soft(a);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ logits,  // (N, V), row stride row_stride
                   int64_t vocab, int64_t row_stride,
                   const int64_t* __restrict__ targets,  // (N)
                   bool has_ignore, int64_t ignore_index,
                   float* __restrict__ logprobs,   // (N)
                   float* __restrict__ logsumexp,  // (N)
                   float* __restrict__ entropy) {  // (N) or null
  __shared__ Soft scratch[32];
  const int64_t n = blockIdx.x;
  const T* row = logits + n * row_stride;
  Soft st{-INFINITY, 0.f, 0.f};
  device::visit_row(row, vocab, [&](int64_t, float l) { soft_add(st, l); });
  st = block_soft(st, scratch);
  if (threadIdx.x != 0) return;
  const float log_s = logf(st.s);
  const float lse = st.m + log_s;
  logsumexp[n] = lse;
  if (entropy) entropy[n] = log_s - st.t / st.s;
  const int64_t t = targets[n];
  float lp;
  if (has_ignore && t == ignore_index)
    lp = 0.f;
  else if (t < 0 || t >= vocab)
    lp = NAN;
  else
    lp = to_float(row[t]) - lse;
  logprobs[n] = lp;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const T* __restrict__ logits,  // (N, V), row stride row_stride
                    int64_t vocab, int64_t row_stride,
                    const int64_t* __restrict__ targets,  // (N)
                    bool has_ignore, int64_t ignore_index,
                    const float* __restrict__ logsumexp,      // (N)
                    const float* __restrict__ grad_logprobs,  // (N)
                    const float* __restrict__ grad_entropy,   // (N) or null
                    T* __restrict__ grad_logits) {            // (N, V) contiguous
  __shared__ float scratch[32];
  const int64_t n = blockIdx.x;
  const T* row = logits + n * row_stride;
  T* out = grad_logits + n * vocab;
  const float lse = logsumexp[n];
  const int64_t t = targets[n];
  const bool hit = !(has_ignore && t == ignore_index) && t >= 0 && t < vocab;
  const float g = hit ? grad_logprobs[n] : 0.f;
  const float ge = grad_entropy ? grad_entropy[n] : 0.f;

  // dH/dl_i = -p_i (log p_i + H) = -p_i (log p_i - sum_j p_j log p_j).
  float plogp = 0.f;
  if (grad_entropy) {
    float acc = 0.f;
    device::visit_row(row, vocab, [&](int64_t, float l) {
      const float lp = l - lse;
      const float p = expf(lp);
      if (p != 0.f) acc = fmaf(p, lp, acc);
    });
    plogp = device::block_sum(acc, scratch);
  }
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    const float lp = to_float(row[i]) - lse;
    const float p = expf(lp);
    float d = p != 0.f ? -p * (g + ge * (lp - plogp)) : 0.f;
    if (hit && i == t) d += g;
    out[i] = device::from_float<T>(d);
  }
}

template <typename T>
void forward_t(const void* logits, int64_t rows, int64_t vocab, int64_t row_stride, const int64_t* targets,
               bool has_ignore, int64_t ignore_index, float* logprobs, float* logsumexp, float* entropy,
               cudaStream_t stream) {
  forward_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      static_cast<const T*>(logits), vocab, row_stride, targets, has_ignore, ignore_index, logprobs, logsumexp,
      entropy);
}

template <typename T>
void backward_t(const void* logits, int64_t rows, int64_t vocab, int64_t row_stride, const int64_t* targets,
                bool has_ignore, int64_t ignore_index, const float* logsumexp, const float* grad_logprobs,
                const float* grad_entropy, void* grad_logits, cudaStream_t stream) {
  backward_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      static_cast<const T*>(logits), vocab, row_stride, targets, has_ignore, ignore_index, logsumexp, grad_logprobs,
      grad_entropy, static_cast<T*>(grad_logits));
}

}  // namespace

void logprob_gather_forward(const void* logits, FloatDType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                            const int64_t* targets, bool has_ignore, int64_t ignore_index, float* logprobs,
                            float* logsumexp, float* entropy, cudaStream_t stream) {
  if (rows == 0) return;
  switch (dtype) {
    case FloatDType::F32:
      return forward_t<float>(logits, rows, vocab, row_stride, targets, has_ignore, ignore_index, logprobs, logsumexp,
                              entropy, stream);
    case FloatDType::BF16:
      return forward_t<__nv_bfloat16>(logits, rows, vocab, row_stride, targets, has_ignore, ignore_index, logprobs,
                                      logsumexp, entropy, stream);
    case FloatDType::F16:
      return forward_t<__half>(logits, rows, vocab, row_stride, targets, has_ignore, ignore_index, logprobs, logsumexp,
                               entropy, stream);
  }
}

void logprob_gather_backward(const void* logits, FloatDType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                             const int64_t* targets, bool has_ignore, int64_t ignore_index, const float* logsumexp,
                             const float* grad_logprobs, const float* grad_entropy, void* grad_logits,
                             cudaStream_t stream) {
  if (rows == 0) return;
  switch (dtype) {
    case FloatDType::F32:
      return backward_t<float>(logits, rows, vocab, row_stride, targets, has_ignore, ignore_index, logsumexp,
                               grad_logprobs, grad_entropy, grad_logits, stream);
    case FloatDType::BF16:
      return backward_t<__nv_bfloat16>(logits, rows, vocab, row_stride, targets, has_ignore, ignore_index, logsumexp,
                                       grad_logprobs, grad_entropy, grad_logits, stream);
    case FloatDType::F16:
      return backward_t<__half>(logits, rows, vocab, row_stride, targets, has_ignore, ignore_index, logsumexp,
                                grad_logprobs, grad_entropy, grad_logits, stream);
  }
}

}  // namespace troupe::kernels::cuda
