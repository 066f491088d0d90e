#pragma once
// Raw CUDA launchers of the log-prob gather (no LibTorch), one block a row:
//   logits (N, V) in `dtype`, row stride row_stride (elements), last dim contiguous
//   targets (N) int64; rows whose target is ignore_index (when has_ignore) give
//   log-prob 0 and no log-prob gradient; other targets outside [0, V) give NaN (a
//   kernel cannot raise: the NaN reaches the loss)
// forward: logprobs[n] = logits[n][t] - lse[n], lse[n] = logsumexp(logits[n]), and
//   entropy[n] = lse[n] - sum_i p_i logits[n][i] when `entropy` is not null; fp32.
// backward: grad_logits (N, V) contiguous in `dtype` =
//   g_lp[n] (onehot(t) - p) - g_ent[n] p (log p + H)   (g_ent null: no entropy term)
#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/float_dtype.hpp"

namespace troupe::kernels::cuda {

void logprob_gather_forward(const void* logits, FloatDType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                            const int64_t* targets, bool has_ignore, int64_t ignore_index, float* logprobs,
                            float* logsumexp, float* entropy, cudaStream_t stream);

void logprob_gather_backward(const void* logits, FloatDType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                             const int64_t* targets, bool has_ignore, int64_t ignore_index, const float* logsumexp,
                             const float* grad_logprobs, const float* grad_entropy, void* grad_logits,
                             cudaStream_t stream);

}  // namespace troupe::kernels::cuda
