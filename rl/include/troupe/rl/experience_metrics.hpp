#pragma once
/// What the trainer logs about a batch of experience.
#include <map>
#include <string>

#include <troupe/rl/experience.hpp>

namespace troupe::rl {

/// Means over the batch, for the tensors the experience has:
///   reward_score    mean score (before clipping)
///   baseline_reward mean score of the greedy answers (ReMax's baseline), when there
///   kl              mean per-token k1 KL(policy || reference) over action tokens
///   kl_per_answer   mean over answers of the summed k1 KL (the KL usually reported)
///   answer_length   mean number of action tokens (EOS included)
///   advantage, return, value   masked means over action tokens
/// Computed without autograd; one host sync per entry.
std::map<std::string, double> experience_metrics(const Experience& exp);

/// TRL's approxkl: 0.5 * mean over action tokens of (logprobs - exp.logprobs)^2, where
/// `logprobs` (B, T-1) are the training policy's and exp.logprobs the sampling policy's.
/// The mean is over the minibatch's tokens (minibatch_token_mean): on a micro-batch it is
/// its share, and the micro-batches' shares add up to the minibatch's value.
double approx_kl(const torch::Tensor& logprobs, const Experience& exp);

}  // namespace troupe::rl
