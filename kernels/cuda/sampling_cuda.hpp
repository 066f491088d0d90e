#pragma once
// Tensor glue of the CUDA next-token choice (cuda/sampling.cuh): the launcher in
// src/sampling.cpp calls it for CUDA logits, with the arguments of
// kernels::sample_next_tokens (see <troupe/kernels/sampling.hpp>).
//
// Greedy is one kernel. Sampling draws q = Exp(1) over (B, V) fp32 with the generator
// (as at::multinomial does), then one fused kernel: s = l / T, kept s >= the row's
// top-k threshold, argmax of s - log q. The top-k threshold (the k-th largest s) comes
// from torch's topk; top-p (rare) masks s with torch's sort/softmax/cumsum as Hugging
// Face's warper does and hands the masked s to the same kernel.
#include <ATen/core/Generator.h>
#include <troupe/kernels/sampling.hpp>

namespace troupe::kernels::cuda {

/// Token ids (B) int64 from logits (B, V) of any float dtype on a CUDA device.
torch::Tensor sample_next_tokens(const torch::Tensor& logits, const SamplingParams& params, at::Generator& generator);

}  // namespace troupe::kernels::cuda
