#include <troupe/rl/ppo.hpp>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/rl/gae.hpp>
#include <troupe/rl/loss_reduction.hpp>
#include <troupe/rl/masked_ops.hpp>
#include <troupe/rl/ppo_losses.hpp>
#include <troupe/rl/reward_shaping.hpp>
#include <troupe/rl/truncated_is.hpp>
#include "require.hpp"

namespace troupe::rl {

PpoConfig PpoConfig::from_options(const AlgorithmOptions& options) {
  PpoConfig c;
  c.kl_ctl = options.get("kl_ctl", c.kl_ctl);
  c.clip_reward_value = options.get("clip_reward_value", c.clip_reward_value);
  c.cliprange = options.get("cliprange", c.cliprange);
  c.cliprange_value = options.get("cliprange_value", c.cliprange_value);
  c.gamma = options.get("gamma", c.gamma);
  c.lam = options.get("lam", c.lam);
  c.whiten_advantages = options.get_bool("whiten_advantages", c.whiten_advantages);
  require_range("ppo", "kl_ctl", c.kl_ctl, 0.0, 1e9);
  require_range("ppo", "clip_reward_value", c.clip_reward_value, 0.0, 1e9);
  require_range("ppo", "cliprange", c.cliprange, 0.0, 1.0);
  require_range("ppo", "cliprange_value", c.cliprange_value, 0.0, 1e9);
  require_range("ppo", "gamma", c.gamma, 0.0, 1.0);
  require_range("ppo", "lam", c.lam, 0.0, 1.0);
  return c;
}

void Ppo::compute_advantages(Experience& exp) {
  exp.validate();
  require_tensors("ppo", exp, {"action_mask", "logprobs", "ref_logprobs", "values", "reward_score"});
  const int64_t start = exp.start();
  exp.rewards = compute_rewards(exp.logprobs, exp.ref_logprobs, exp.reward_score, exp.action_mask, start,
                                config_.kl_ctl, config_.clip_reward_value);  // (B, T-1)
  exp.values = zero_past_end(exp.values.detach(), exp.action_mask, start);    // (B, T-1)
  auto gae = gae_advantages_and_returns(exp.values, exp.rewards, start, config_.gamma, config_.lam);
  exp.advantages = gae.advantages;  // (B, A)
  exp.returns = gae.returns;        // (B, A)
  if (config_.whiten_advantages) {
    const auto answer_mask = exp.action_mask.narrow(1, start, exp.answer_length());  // (B, A)
    exp.advantages = whiten(exp.advantages, answer_mask);
  }
}

torch::Tensor Ppo::policy_loss(const torch::Tensor& logprobs, const Experience& exp) const {
  require_tensors("ppo policy_loss", exp, {"action_mask", "logprobs", "advantages"});
  TORCH_CHECK(logprobs.sizes() == exp.logprobs.sizes(), "ppo policy_loss: logprobs must be (B, T-1) = ",
              exp.logprobs.sizes(), ", got ", logprobs.sizes());
  const int64_t start = exp.start(), A = exp.answer_length();
  const auto mask = exp.action_mask.narrow(1, start, A);  // (B, A)
  // ppo_actor_loss over the minibatch's tokens: a micro-batch gives its share.
  // With --rollout_is_truncation, each token weighted by its truncated IS ratio.
  return minibatch_token_mean(
      apply_truncated_is(clipped_surrogate(logprobs.narrow(1, start, A), exp.logprobs.narrow(1, start, A),
                                           exp.advantages, mask, config_.cliprange),
                         exp),
      mask, exp);
}

torch::Tensor Ppo::value_loss(const torch::Tensor& values, const Experience& exp) const {
  require_tensors("ppo value_loss", exp, {"action_mask", "values", "returns"});
  TORCH_CHECK(values.sizes() == exp.values.sizes(), "ppo value_loss: values must be (B, T-1) = ",
              exp.values.sizes(), ", got ", values.sizes());
  const int64_t start = exp.start(), A = exp.answer_length();
  // ppo_value_loss over the minibatch's tokens: a micro-batch gives its share.
  return 0.5 * minibatch_token_mean(clipped_value_error(values.narrow(1, start, A), exp.values.narrow(1, start, A),
                                                        exp.returns, config_.cliprange_value),
                                    exp.action_mask.narrow(1, start, A), exp);
}

}  // namespace troupe::rl
