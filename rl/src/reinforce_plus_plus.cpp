#include <troupe/rl/reinforce_plus_plus.hpp>

#include <torch/torch.h>

#include <troupe/rl/group_advantages.hpp>
#include <troupe/rl/policy_loss.hpp>
#include <troupe/rl/token_returns.hpp>
#include "require.hpp"
#include "shared_options.hpp"

namespace troupe::rl {

ReinforcePlusPlusConfig ReinforcePlusPlusConfig::from_options(const AlgorithmOptions& options, bool group_baseline) {
  const std::string algorithm = group_baseline ? "reinforce++_baseline" : "reinforce++";
  ReinforcePlusPlusConfig c;
  c.group_baseline = group_baseline;
  c.samples_per_prompt = options.get_int("samples_per_prompt", group_baseline ? 4 : 1);
  c.kl_coef = options.get("kl_coef", c.kl_coef);
  c.kl_estimator = read_kl_estimator(options, algorithm, c.kl_estimator);
  if (!group_baseline) c.gamma = options.get("gamma", c.gamma);  // OpenRLHF fixes gamma = 1 with a baseline
  c.cliprange = options.get("cliprange", c.cliprange);
  c.whiten_advantages = options.get_bool("whiten_advantages", c.whiten_advantages);
  c.reward = RewardOptions::from_options(options, algorithm);
  c.token_mean = options.get_bool("token_mean", c.token_mean);
  require_range(algorithm, "samples_per_prompt", static_cast<double>(c.samples_per_prompt), group_baseline ? 2 : 1,
                1e6);
  require_range(algorithm, "kl_coef", c.kl_coef, 0.0, 1e9);
  require_range(algorithm, "gamma", c.gamma, 0.0, 1.0);
  require_range(algorithm, "cliprange", c.cliprange, 0.0, 1.0);
  return c;
}

void ReinforcePlusPlus::compute_advantages(Experience& exp) {
  exp.validate();
  require_tensors(name(), exp, {"action_mask", "reward_score"});
  torch::NoGradGuard no_grad;
  const auto mask = answer_mask(exp);           // (B, A)
  auto score = normalizer_(exp.reward_score);   // (B,)
  if (config_.group_baseline) score = group_centered(score, prompt_groups(exp.prompts, config_.samples_per_prompt));
  const auto kl = config_.kl_coef > 0 ? answer_kl(exp, config_.kl_estimator)
                                      : torch::zeros(mask.sizes(), exp.action_mask.options().dtype(torch::kFloat));  // (B, A)
  const auto rewards = kl_shaped_rewards(score, kl, mask, config_.kl_coef);  // (B, A)
  exp.returns = discounted_returns(rewards, mask, config_.gamma);            // (B, A)
  exp.advantages = config_.whiten_advantages
                       ? normalize_over_tokens(exp.returns, mask)
                       : torch::where(mask.ne(0), exp.returns, torch::zeros({}, exp.returns.options()));  // (B, A)
  exp.rewards = torch::zeros({exp.batch_size(), exp.sequence_length() - 1}, rewards.options());  // (B, T-1)
  exp.rewards.narrow(1, exp.start(), exp.answer_length()).copy_(rewards);
}

torch::Tensor ReinforcePlusPlus::policy_loss(const torch::Tensor& logprobs, const Experience& exp) const {
  PolicyLossOptions loss;
  loss.cliprange = config_.cliprange;
  loss.aggregation = config_.token_mean ? LossAggregation::TokenMean : LossAggregation::SequenceMean;
  return clipped_policy_loss(logprobs, exp, loss, name());
}

}  // namespace troupe::rl
