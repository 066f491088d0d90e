#include <troupe/rl/dr_grpo.hpp>

#include <torch/torch.h>

#include <troupe/rl/group_advantages.hpp>
#include <troupe/rl/policy_loss.hpp>
#include "require.hpp"
#include "shared_options.hpp"

namespace troupe::rl {

DrGrpoConfig DrGrpoConfig::from_options(const AlgorithmOptions& options) {
  DrGrpoConfig c;
  c.samples_per_prompt = options.get_int("samples_per_prompt", c.samples_per_prompt);
  c.cliprange = options.get("cliprange", c.cliprange);
  c.kl_coef = options.get("kl_coef", c.kl_coef);
  c.kl_estimator = read_kl_estimator(options, "dr_grpo", c.kl_estimator);
  c.generate_max_len = options.get_int("generate_max_len", c.generate_max_len);
  c.reward = RewardOptions::from_options(options, "dr_grpo");
  require_range("dr_grpo", "samples_per_prompt", static_cast<double>(c.samples_per_prompt), 2, 1e6);
  require_range("dr_grpo", "cliprange", c.cliprange, 0.0, 1.0);
  require_range("dr_grpo", "kl_coef", c.kl_coef, 0.0, 1e9);
  require_range("dr_grpo", "generate_max_len", static_cast<double>(c.generate_max_len), 0, 1e9);
  return c;
}

void DrGrpo::compute_advantages(Experience& exp) {
  exp.validate();
  require_tensors("dr_grpo", exp, {"action_mask", "reward_score"});
  torch::NoGradGuard no_grad;
  const auto score = normalizer_(exp.reward_score);                                            // (B,)
  const auto advantage = group_centered(score, prompt_groups(exp.prompts, config_.samples_per_prompt));  // (B,)
  exp.advantages = broadcast_over_actions(advantage, answer_mask(exp));                        // (B, A)
  exp.returns = torch::Tensor();
  exp.rewards = torch::Tensor();
}

torch::Tensor DrGrpo::policy_loss(const torch::Tensor& logprobs, const Experience& exp) const {
  PolicyLossOptions loss;
  loss.cliprange = config_.cliprange;
  loss.kl_coef = config_.kl_coef;
  loss.kl_estimator = config_.kl_estimator;
  loss.aggregation = LossAggregation::ConstantLength;
  loss.constant_length = config_.generate_max_len;
  return clipped_policy_loss(logprobs, exp, loss, "dr_grpo");
}

}  // namespace troupe::rl
