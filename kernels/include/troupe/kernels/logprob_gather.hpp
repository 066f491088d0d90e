#pragma once
/// log_softmax(logits)[target] (and optionally the entropy of the distribution) per
/// position, without materialising the (N, V) log-probs: one pass per row for the
/// max and the sum of exponentials, and in the backward one pass that writes
/// d logits = g * (onehot(target) - softmax) (+ the entropy's term). An autograd
/// function: the experience step, the PPO actor loss and the SFT loss use it.
#include <optional>
#include <utility>

#include <torch/types.h>

namespace troupe::kernels {

/// logits (..., V) any float dtype, targets (...) int64 -> log-probs (...) fp32, with
/// autograd to logits when they require grad. A target outside [0, V) is an error,
/// except `ignore_index` (if given) whose positions give 0 and no gradient.
torch::Tensor gather_logprobs(const torch::Tensor& logits, const torch::Tensor& targets,
                              std::optional<int64_t> ignore_index = std::nullopt);

/// As gather_logprobs, plus the entropy -sum p log p (...) fp32, both differentiable.
std::pair<torch::Tensor, torch::Tensor> gather_logprobs_and_entropy(const torch::Tensor& logits,
                                                                    const torch::Tensor& targets);

namespace reference {
torch::Tensor gather_logprobs(const torch::Tensor& logits, const torch::Tensor& targets,
                              std::optional<int64_t> ignore_index = std::nullopt);
std::pair<torch::Tensor, torch::Tensor> gather_logprobs_and_entropy(const torch::Tensor& logits,
                                                                    const torch::Tensor& targets);
}  // namespace reference

}  // namespace troupe::kernels
