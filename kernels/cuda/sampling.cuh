#pragma once
// Raw CUDA launchers of next-token choice (no LibTorch), one block a row of logits:
//   logits (B, V) in `dtype`, row stride row_stride (elements), last dim contiguous
//   tokens (B) int64
// greedy: tokens[b] = argmax_i logits[b][i] (torch.argmax's order: NaN first, then the
// largest, ties to the smallest index).
// sampled: with s_i = logits[b][i] * inv_temperature in fp32, tokens[b] = argmax over
// kept i of s_i - log q[b][i], kept meaning s_i >= threshold[b] (threshold null: all
// kept); q (B, V) fp32 contiguous, Exp(1) draws. This is torch's multinomial draw
// argmax p_i / q_i with p the softmax of the kept s (the softmax's sum cancels).
#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/float_dtype.hpp"

namespace troupe::kernels::cuda {

void greedy_tokens(const void* logits, FloatDType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                   int64_t* tokens, cudaStream_t stream);

void sampled_tokens(const void* logits, FloatDType dtype, int64_t rows, int64_t vocab, int64_t row_stride,
                    float inv_temperature, const float* threshold, const float* q, int64_t* tokens,
                    cudaStream_t stream);

}  // namespace troupe::kernels::cuda
