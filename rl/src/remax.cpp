#include <troupe/rl/remax.hpp>

#include <torch/torch.h>

#include <troupe/rl/policy_loss.hpp>
#include <troupe/rl/token_returns.hpp>
#include "require.hpp"
#include "shared_options.hpp"

namespace troupe::rl {

RemaxConfig RemaxConfig::from_options(const AlgorithmOptions& options) {
  RemaxConfig c;
  c.samples_per_prompt = options.get_int("samples_per_prompt", c.samples_per_prompt);
  c.kl_coef = options.get("kl_coef", c.kl_coef);
  c.kl_estimator = read_kl_estimator(options, "remax", c.kl_estimator);
  c.cliprange = options.get("cliprange", c.cliprange);
  c.token_mean = options.get_bool("token_mean", c.token_mean);
  require_range("remax", "samples_per_prompt", static_cast<double>(c.samples_per_prompt), 1, 1e6);
  require_range("remax", "kl_coef", c.kl_coef, 0.0, 1e9);
  require_range("remax", "cliprange", c.cliprange, 0.0, 1.0);
  return c;
}

void Remax::compute_advantages(Experience& exp) {
  exp.validate();
  require_tensors(name(), exp, {"action_mask", "reward_score", "baseline_reward"});
  torch::NoGradGuard no_grad;
  const auto mask = answer_mask(exp);  // (B, A)
  const auto kl = config_.kl_coef > 0 ? answer_kl(exp, config_.kl_estimator)
                                      : torch::zeros(mask.sizes(), exp.action_mask.options().dtype(torch::kFloat));  // (B, A)
  const auto rewards = kl_shaped_rewards(exp.reward_score, kl, mask, config_.kl_coef);  // (B, A)
  exp.returns = discounted_returns(rewards, mask, 1.0);                                 // (B, A)
  const auto baseline = exp.baseline_reward.to(exp.returns.dtype()).unsqueeze(1);       // (B, 1)
  exp.advantages = torch::where(mask.ne(0), exp.returns - baseline, torch::zeros({}, exp.returns.options()));  // (B, A)
  exp.rewards = torch::zeros({exp.batch_size(), exp.sequence_length() - 1}, rewards.options());  // (B, T-1)
  exp.rewards.narrow(1, exp.start(), exp.answer_length()).copy_(rewards);
}

torch::Tensor Remax::policy_loss(const torch::Tensor& logprobs, const Experience& exp) const {
  PolicyLossOptions loss;
  loss.cliprange = config_.cliprange;
  loss.aggregation = config_.token_mean ? LossAggregation::TokenMean : LossAggregation::SequenceMean;
  return clipped_policy_loss(logprobs, exp, loss, name());
}

}  // namespace troupe::rl
