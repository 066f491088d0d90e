// Next-token choice, one block a row: each thread keeps its best (value, index) over
// its share of the row, then one block argmax. The sampled form fuses temperature,
// the top-k threshold and the exponential race (s - log q) into the same pass, so the
// (B, V) probabilities are never written.
#include "cuda/sampling.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/device/reduce.cuh"
#include "cuda/device/row.cuh"

namespace troupe::kernels::cuda {
namespace {

using device::ArgMax;

constexpr int kThreads = 512;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    greedy_kernel(const T* __restrict__ logits,  // (B, V), row stride row_stride
                  int64_t vocab, int64_t row_stride, int64_t* __restrict__ tokens) {
  __shared__ ArgMax scratch[32];
  const int64_t b = blockIdx.x;
  ArgMax best{-INFINITY, 0x7fffffffffffffffLL};
  device::visit_row(logits + b * row_stride, vocab, [&](int64_t i, float v) {
    const ArgMax c{v, i};
    if (device::arg_better(c, best)) best = c;
  });
  best = device::block_argmax(best, scratch);
  if (threadIdx.x == 0) tokens[b] = best.index;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    sampled_kernel(const T* __restrict__ logits,  // (B, V), row stride row_stride
                   int64_t vocab, int64_t row_stride, float inv_temperature,
                   const float* __restrict__ threshold,  // (B) or null
                   const float* __restrict__ q,          // (B, V) Exp(1)
                   int64_t* __restrict__ tokens) {
  __shared__ ArgMax scratch[32];
  const int64_t b = blockIdx.x;
  const float thr = threshold ? threshold[b] : -INFINITY;
  const float* qb = q + b * vocab;
  ArgMax best{-INFINITY, 0x7fffffffffffffffLL};
  device::visit_row(logits + b * row_stride, vocab, [&](int64_t i, float l) {
    const float s = l * inv_temperature;
    // Dropped tokens stay -inf (p = 0 in torch's race, never above a kept token).
    const float v = s >= thr ? s - logf(qb[i]) : -INFINITY;
    const ArgMax c{v, i};
    if (device::arg_better(c, best)) best = c;
  });
  best = device::block_argmax(best, scratch);
  if (threadIdx.x == 0) tokens[b] = best.index;
}

}  // namespace

void greedy_tokens(const void* logits, FloatDType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                   int64_t* tokens, cudaStream_t stream) {
  if (rows == 0) return;
  const auto grid = static_cast<unsigned>(rows);
  switch (dtype) {
    case FloatDType::F32:
      greedy_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const float*>(logits), vocab, row_stride, tokens);
      break;
    case FloatDType::BF16:
      greedy_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(logits), vocab, row_stride,
                                                   tokens);
      break;
    case FloatDType::F16:
      greedy_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const __half*>(logits), vocab, row_stride, tokens);
      break;
  }
}

void sampled_tokens(const void* logits, FloatDType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                    float inv_temperature, const float* threshold, const float* q, int64_t* tokens,
                    cudaStream_t stream) {
  if (rows == 0) return;
  const auto grid = static_cast<unsigned>(rows);
  switch (dtype) {
    case FloatDType::F32:
      sampled_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const float*>(logits), vocab, row_stride,
                                                    inv_temperature, threshold, q, tokens);
      break;
    case FloatDType::BF16:
      sampled_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(logits), vocab, row_stride,
                                                    inv_temperature, threshold, q, tokens);
      break;
    case FloatDType::F16:
      sampled_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const __half*>(logits), vocab, row_stride,
                                                    inv_temperature, threshold, q, tokens);
      break;
  }
}

}  // namespace troupe::kernels::cuda
