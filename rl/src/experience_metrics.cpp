#include <troupe/rl/experience_metrics.hpp>

#include <torch/torch.h>

#include <troupe/rl/kl.hpp>
#include <troupe/rl/loss_reduction.hpp>
#include <troupe/rl/masked_ops.hpp>

namespace troupe::rl {

std::map<std::string, double> experience_metrics(const Experience& exp) {
  exp.validate();
  torch::NoGradGuard no_grad;
  std::map<std::string, double> out;
  const int64_t start = exp.start(), A = exp.answer_length();
  if (exp.reward_score.defined()) out["reward_score"] = exp.reward_score.to(torch::kDouble).mean().item<double>();
  if (exp.baseline_reward.defined())
    out["baseline_reward"] = exp.baseline_reward.to(torch::kDouble).mean().item<double>();
  if (!exp.action_mask.defined()) return out;
  const auto mask = exp.action_mask.narrow(1, start, A).ne(0);  // (B, A)
  out["answer_length"] = mask.sum(1).to(torch::kDouble).mean().item<double>();
  if (exp.logprobs.defined() && exp.ref_logprobs.defined()) {
    const auto kl = kl_estimate(exp.logprobs.narrow(1, start, A), exp.ref_logprobs.narrow(1, start, A),
                                KlEstimator::K1).to(torch::kDouble);  // (B, A)
    out["kl"] = masked_mean(kl, mask).item<double>();
    out["kl_per_answer"] = torch::where(mask, kl, torch::zeros({}, kl.options())).sum(1).mean().item<double>();
  }
  if (exp.advantages.defined()) out["advantage"] = masked_mean(exp.advantages.to(torch::kDouble), mask).item<double>();
  if (exp.returns.defined()) out["return"] = masked_mean(exp.returns.to(torch::kDouble), mask).item<double>();
  if (exp.values.defined())
    out["value"] = masked_mean(exp.values.narrow(1, start, A).to(torch::kDouble), mask).item<double>();
  return out;
}

double approx_kl(const torch::Tensor& logprobs, const Experience& exp) {
  TORCH_CHECK(logprobs.sizes() == exp.logprobs.sizes(), "approx_kl: logprobs must be (B, T-1) = ", exp.logprobs.sizes(),
              ", got ", logprobs.sizes());
  torch::NoGradGuard no_grad;
  const int64_t start = exp.start(), A = exp.answer_length();
  const auto mask = exp.action_mask.narrow(1, start, A);  // (B, A)
  const auto diff = (logprobs.narrow(1, start, A) - exp.logprobs.narrow(1, start, A)).to(torch::kFloat64) *
                    mask.to(torch::kFloat64);  // (B, A)
  return 0.5 * minibatch_token_mean(diff.pow(2), mask, exp).item<double>();
}

}  // namespace troupe::rl
