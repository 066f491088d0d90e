#include <troupe/rl/grpo.hpp>

#include <torch/torch.h>

#include <troupe/rl/group_advantages.hpp>
#include <troupe/rl/policy_loss.hpp>
#include <troupe/rl/token_returns.hpp>
#include "require.hpp"
#include "shared_options.hpp"

namespace troupe::rl {

GrpoConfig GrpoConfig::from_options(const AlgorithmOptions& options) {
  GrpoConfig c;
  c.samples_per_prompt = options.get_int("samples_per_prompt", c.samples_per_prompt);
  c.cliprange = options.get("cliprange", c.cliprange);
  c.kl_coef = options.get("kl_coef", c.kl_coef);
  c.kl_estimator = read_kl_estimator(options, "grpo", c.kl_estimator);
  c.kl_in_reward = options.get_bool("kl_in_reward", c.kl_in_reward);
  c.reward_clip = options.get("reward_clip", c.reward_clip);
  c.eps = options.get("eps", c.eps);
  c.scale_rewards = options.get_bool("scale_rewards", c.scale_rewards);
  c.token_mean = options.get_bool("token_mean", c.token_mean);
  require_range("grpo", "samples_per_prompt", static_cast<double>(c.samples_per_prompt), 2, 1e6);
  require_range("grpo", "cliprange", c.cliprange, 0.0, 1.0);
  require_range("grpo", "kl_coef", c.kl_coef, 0.0, 1e9);
  require_range("grpo", "reward_clip", c.reward_clip, 0.0, 1e9);
  require_range("grpo", "eps", c.eps, 0.0, 1.0);
  return c;
}

void Grpo::compute_advantages(Experience& exp) {
  exp.validate();
  require_tensors("grpo", exp, {"action_mask", "reward_score"});
  if (config_.kl_in_reward && config_.kl_coef > 0) require_tensors("grpo", exp, {"logprobs", "ref_logprobs"});
  auto scores = exp.reward_score;  // (B,)
  if (config_.reward_clip > 0) scores = scores.clamp(-config_.reward_clip, config_.reward_clip);
  // Groups by prompt, not by row count: the trainer drops short answers before this.
  const auto groups = prompt_groups(exp.prompts, config_.samples_per_prompt);  // (B,)
  const auto per_answer = group_normalized_advantages(scores, groups, config_.eps, config_.scale_rewards);  // (B,)
  const auto mask = answer_mask(exp);                                          // (B, A)
  exp.advantages = broadcast_over_actions(per_answer, mask);                   // (B, A)
  if (config_.kl_in_reward && config_.kl_coef > 0) {
    const auto kl_penalty = -config_.kl_coef * answer_kl(exp, config_.kl_estimator);  // (B, A)
    exp.advantages = exp.advantages + discounted_returns(kl_penalty, mask, 1.0);
  }
  exp.returns = torch::Tensor();
  exp.rewards = torch::Tensor();
}

torch::Tensor Grpo::policy_loss(const torch::Tensor& logprobs, const Experience& exp) const {
  PolicyLossOptions loss;
  loss.cliprange = config_.cliprange;
  loss.kl_coef = config_.kl_in_reward ? 0.0 : config_.kl_coef;
  loss.kl_estimator = config_.kl_estimator;
  loss.aggregation = config_.token_mean ? LossAggregation::TokenMean : LossAggregation::SequenceMean;
  return clipped_policy_loss(logprobs, exp, loss, "grpo");
}

}  // namespace troupe::rl
