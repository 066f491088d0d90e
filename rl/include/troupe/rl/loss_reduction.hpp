#pragma once
/// Reductions of per-answer-token losses that divide by the minibatch's counts
/// (Experience::minibatch_totals) instead of the counts of the rows they see. On a whole
/// minibatch they are the plain means; on a micro-batch cut from one they give its share
/// of the minibatch's loss, so the micro-batches' losses and gradients add up to the
/// minibatch's. An algorithm whose losses reduce only through these (or through
/// clipped_policy_loss) can declare Algorithm::supports_micro_batches().
#include <cstdint>
#include <string>

#include <torch/types.h>

#include <troupe/rl/experience.hpp>

namespace troupe::rl {

/// sum(x on mask) / the minibatch's action tokens: masked_mean over the minibatch
/// (DeepSpeed-Chat's token mean). x and mask (B, A), the answer positions of `exp`; a
/// minibatch without a token gives 0.
torch::Tensor minibatch_token_mean(const torch::Tensor& x, const torch::Tensor& mask, const Experience& exp);

/// The sum over rows of each row's masked token mean, / the minibatch's rows:
/// sequence_mean over the minibatch (GRPO's 1/G sum_i 1/|o_i| sum_t). x and mask (B, A).
torch::Tensor minibatch_sequence_mean(const torch::Tensor& x, const torch::Tensor& mask, const Experience& exp);

/// sum(x on mask) / (the minibatch's rows * length): Dr. GRPO's constant-length mean.
/// `length` 0 = the minibatch's answer width A. x and mask (B, A). Throws troupe::Error
/// naming `algorithm` when the minibatch's answers are wider than `length`.
torch::Tensor minibatch_constant_length_mean(const torch::Tensor& x, const torch::Tensor& mask, const Experience& exp,
                                             int64_t length, const std::string& algorithm);

}  // namespace troupe::rl
