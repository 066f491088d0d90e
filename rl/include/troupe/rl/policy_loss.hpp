#pragma once
/// The policy loss the critic-free algorithms share (GRPO, Dr. GRPO, RLOO, REINFORCE++):
/// PPO's clipped surrogate per answer token, an optional KL loss term, and a choice of
/// how the tokens are averaged.
#include <string>

#include <torch/types.h>

#include <troupe/rl/experience.hpp>
#include <troupe/rl/kl.hpp>

namespace troupe::rl {

/// How per-token losses (B, A) become one number.
enum class LossAggregation {
  TokenMean,       ///< one mean over every action token of the batch (DeepSpeed-Chat's PPO, DAPO)
  SequenceMean,    ///< mean over each answer's tokens, then over answers (GRPO's 1/G sum_i 1/|o_i|)
  ConstantLength,  ///< sum over all tokens / (rows * a constant length): no length bias (Dr. GRPO)
};

struct PolicyLossOptions {
  double cliprange = 0.2;                       ///< ratio clip of the surrogate
  double kl_coef = 0.0;                         ///< weight of the KL(policy || reference) loss term; 0 = none
  KlEstimator kl_estimator = KlEstimator::K3;   ///< of that term
  LossAggregation aggregation = LossAggregation::TokenMean;
  /// ConstantLength's length; 0 = the minibatch's answer width A (the longest answer
  /// of its batch). Must be >= A.
  int64_t constant_length = 0;
};

/// The answer positions of the action mask: exp.action_mask[:, start:], (B, A).
torch::Tensor answer_mask(const Experience& exp);

/// KL(policy || reference) per answer token (B, A) from exp.logprobs and
/// exp.ref_logprobs (what sampled, not the policy in training); 0 off the mask.
torch::Tensor answer_kl(const Experience& exp, KlEstimator estimator);

/// Per answer token clipped_surrogate(logprobs, exp.logprobs, exp.advantages) plus
/// kl_coef * kl_estimate(logprobs, exp.ref_logprobs), aggregated as options say over the
/// minibatch's counts (loss_reduction.hpp), so a micro-batch gives its share.
/// logprobs (B, T-1) are the training policy's, differentiable. `algorithm` names the
/// caller in errors (e.g. a missing tensor or a too small constant_length).
torch::Tensor clipped_policy_loss(const torch::Tensor& logprobs, const Experience& exp,
                                  const PolicyLossOptions& options, const std::string& algorithm);

}  // namespace troupe::rl
