#include <troupe/rl/rloo.hpp>

#include <torch/torch.h>

#include <troupe/rl/group_advantages.hpp>
#include "require.hpp"
#include "shared_options.hpp"

namespace troupe::rl {

RlooConfig RlooConfig::from_options(const AlgorithmOptions& options) {
  RlooConfig c;
  c.samples_per_prompt = options.get_int("samples_per_prompt", c.samples_per_prompt);
  c.kl_coef = options.get("kl_coef", c.kl_coef);
  c.kl_estimator = read_kl_estimator(options, "rloo", c.kl_estimator);
  c.cliprange = options.get("cliprange", c.cliprange);
  c.whiten_advantages = options.get_bool("whiten_advantages", c.whiten_advantages);
  c.reward = RewardOptions::from_options(options, "rloo");
  c.token_mean = options.get_bool("token_mean", c.token_mean);
  require_range("rloo", "samples_per_prompt", static_cast<double>(c.samples_per_prompt), 2, 1e6);
  require_range("rloo", "kl_coef", c.kl_coef, 0.0, 1e9);
  require_range("rloo", "cliprange", c.cliprange, 0.0, 1.0);
  return c;
}

void Rloo::compute_advantages(Experience& exp) {
  exp.validate();
  require_tensors("rloo", exp, {"action_mask", "reward_score"});
  torch::NoGradGuard no_grad;
  const auto mask = answer_mask(exp);             // (B, A)
  auto reward = normalizer_(exp.reward_score);    // (B,)
  if (config_.kl_coef > 0)  // the paper's sequence-level penalty: the whole answer is one action
    reward = reward - config_.kl_coef * answer_kl(exp, config_.kl_estimator).sum(1);
  const auto groups = prompt_groups(exp.prompts, config_.samples_per_prompt);  // (B,)
  auto advantage = leave_one_out_advantages(reward, groups);                   // (B,)
  if (config_.whiten_advantages && advantage.numel() >= 2)
    advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8);
  exp.advantages = broadcast_over_actions(advantage, mask);  // (B, A)
  exp.returns = torch::Tensor();
  exp.rewards = torch::Tensor();
}

torch::Tensor Rloo::policy_loss(const torch::Tensor& logprobs, const Experience& exp) const {
  PolicyLossOptions loss;
  loss.cliprange = config_.cliprange;
  loss.aggregation = config_.token_mean ? LossAggregation::TokenMean : LossAggregation::SequenceMean;
  return clipped_policy_loss(logprobs, exp, loss, "rloo");
}

}  // namespace troupe::rl
