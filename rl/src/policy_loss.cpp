#include <troupe/rl/policy_loss.hpp>
#include <troupe/rl/truncated_is.hpp>

#include <torch/torch.h>

#include <troupe/rl/loss_reduction.hpp>
#include <troupe/rl/ppo_losses.hpp>
#include "require.hpp"

namespace troupe::rl {
namespace {

/// kl_estimate on the answer with the log-ratio zeroed off the mask, so exp() in k3
/// never sees padding's log-probs; 0 off the mask.
torch::Tensor masked_kl(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs, const torch::Tensor& mask,
                        KlEstimator estimator) {
  const auto m = mask.to(logprobs.scalar_type());
  return kl_estimate(logprobs * m, ref_logprobs.to(logprobs.scalar_type()) * m, estimator) * m;  // (B, A)
}

}  // namespace

torch::Tensor answer_mask(const Experience& exp) {
  return exp.action_mask.narrow(1, exp.start(), exp.answer_length());  // (B, A)
}

torch::Tensor answer_kl(const Experience& exp, KlEstimator estimator) {
  require_tensors("answer_kl", exp, {"action_mask", "logprobs", "ref_logprobs"});
  torch::NoGradGuard no_grad;
  const int64_t start = exp.start(), A = exp.answer_length();
  return masked_kl(exp.logprobs.narrow(1, start, A).detach(), exp.ref_logprobs.narrow(1, start, A), answer_mask(exp),
                   estimator);  // (B, A)
}

torch::Tensor clipped_policy_loss(const torch::Tensor& logprobs, const Experience& exp,
                                  const PolicyLossOptions& options, const std::string& algorithm) {
  const std::string where = algorithm + " policy_loss";
  require_tensors(where, exp, {"action_mask", "logprobs", "advantages"});
  if (options.kl_coef > 0) require_tensors(where, exp, {"ref_logprobs"});
  TORCH_CHECK(logprobs.sizes() == exp.logprobs.sizes(), where, ": logprobs must be (B, T-1) = ", exp.logprobs.sizes(),
              ", got ", logprobs.sizes());
  const int64_t start = exp.start(), A = exp.answer_length();
  const auto new_lp = logprobs.narrow(1, start, A);  // (B, A)
  const auto mask = answer_mask(exp);                // (B, A)
  // The surrogate alone carries the truncated IS weight (when set), not the KL term.
  auto per_token = apply_truncated_is(clipped_surrogate(new_lp, exp.logprobs.narrow(1, start, A), exp.advantages,
                                                        mask, options.cliprange),
                                      exp);  // (B, A)
  if (options.kl_coef > 0)
    per_token = per_token + options.kl_coef * masked_kl(new_lp, exp.ref_logprobs.narrow(1, start, A), mask,
                                                        options.kl_estimator);
  // Divided by the minibatch's counts, so a micro-batch's loss is its share (loss_reduction.hpp).
  switch (options.aggregation) {
    case LossAggregation::TokenMean: return minibatch_token_mean(per_token, mask, exp);
    case LossAggregation::SequenceMean: return minibatch_sequence_mean(per_token, mask, exp);
    case LossAggregation::ConstantLength:
      return minibatch_constant_length_mean(per_token, mask, exp, options.constant_length, algorithm);
  }
  throw Error(where + ": unknown loss aggregation");
}

}  // namespace troupe::rl
