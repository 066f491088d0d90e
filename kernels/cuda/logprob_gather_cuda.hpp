#pragma once
// Tensor glue of the CUDA log-prob gather (cuda/logprob_gather.cuh): the autograd
// function in src/logprob_gather.cpp calls these for CUDA logits.
#include <cstdint>
#include <optional>
#include <vector>

#include <torch/types.h>

namespace troupe::kernels::cuda {

/// logits2d (N, V) fp32/bf16/fp16 (other float dtypes as fp32), last dim contiguous or
/// not; targets1d (N) int64. Returns {logprobs (N), logsumexp (N), entropy (N) or
/// undefined}, all fp32. ignore_index rows: logprob 0; other targets outside [0, V):
/// NaN (checked on the device, no sync).
std::vector<torch::Tensor> logprob_gather_forward(const torch::Tensor& logits2d, const torch::Tensor& targets1d,
                                                  bool entropy, std::optional<int64_t> ignore_index);

/// d logits (N, V) in logits2d's dtype from grad_logprobs (N) and grad_entropy (N) or
/// undefined; logsumexp is the forward's. ignore_index rows get no log-prob gradient.
torch::Tensor logprob_gather_backward(const torch::Tensor& logits2d, const torch::Tensor& targets1d,
                                      const torch::Tensor& logsumexp, const torch::Tensor& grad_logprobs,
                                      const torch::Tensor& grad_entropy, std::optional<int64_t> ignore_index);

}  // namespace troupe::kernels::cuda
