#include <troupe/rl/grpo.hpp>

#include <torch/torch.h>

#include <troupe/rl/group_advantages.hpp>
#include <troupe/rl/kl.hpp>
#include <troupe/rl/masked_ops.hpp>
#include <troupe/rl/ppo_losses.hpp>
#include "require.hpp"

namespace troupe::rl {

GrpoConfig GrpoConfig::from_options(const AlgorithmOptions& options) {
  GrpoConfig c;
  c.samples_per_prompt = options.get_int("samples_per_prompt", c.samples_per_prompt);
  c.cliprange = options.get("cliprange", c.cliprange);
  c.kl_coef = options.get("kl_coef", c.kl_coef);
  c.eps = options.get("eps", c.eps);
  c.scale_rewards = options.get_bool("scale_rewards", c.scale_rewards);
  c.token_mean = options.get_bool("token_mean", c.token_mean);
  require_range("grpo", "samples_per_prompt", static_cast<double>(c.samples_per_prompt), 2, 1e6);
  require_range("grpo", "cliprange", c.cliprange, 0.0, 1.0);
  require_range("grpo", "kl_coef", c.kl_coef, 0.0, 1e9);
  require_range("grpo", "eps", c.eps, 0.0, 1.0);
  return c;
}

void Grpo::compute_advantages(Experience& exp) {
  exp.validate();
  require_tensors("grpo", exp, {"action_mask", "reward_score"});
  const int64_t B = exp.batch_size();
  if (B % config_.samples_per_prompt != 0)
    throw Error("grpo: a batch of " + std::to_string(B) + " rows is not a whole number of groups of " +
                std::to_string(config_.samples_per_prompt) + " samples per prompt");
  const auto per_answer = group_normalized_advantages(exp.reward_score, config_.samples_per_prompt, config_.eps,
                                                      config_.scale_rewards);          // (B,)
  const auto answer_mask = exp.action_mask.narrow(1, exp.start(), exp.answer_length());  // (B, A)
  exp.advantages = broadcast_over_actions(per_answer, answer_mask);                    // (B, A)
  exp.returns = torch::Tensor();
  exp.rewards = torch::Tensor();
}

torch::Tensor Grpo::policy_loss(const torch::Tensor& logprobs, const Experience& exp) const {
  require_tensors("grpo policy_loss", exp, {"action_mask", "logprobs", "advantages"});
  if (config_.kl_coef > 0) require_tensors("grpo policy_loss", exp, {"ref_logprobs"});
  TORCH_CHECK(logprobs.sizes() == exp.logprobs.sizes(), "grpo policy_loss: logprobs must be (B, T-1) = ",
              exp.logprobs.sizes(), ", got ", logprobs.sizes());
  const int64_t start = exp.start(), A = exp.answer_length();
  const auto new_lp = logprobs.narrow(1, start, A);          // (B, A)
  const auto mask = exp.action_mask.narrow(1, start, A);     // (B, A)
  auto per_token = clipped_surrogate(new_lp, exp.logprobs.narrow(1, start, A), exp.advantages, mask,
                                     config_.cliprange);     // (B, A)
  if (config_.kl_coef > 0) {
    // Zero log-ratio off the answer, so exp() in k3 never sees padding's log-probs.
    const auto m = mask.to(new_lp.scalar_type());
    per_token = per_token + config_.kl_coef * kl_estimate(new_lp * m, exp.ref_logprobs.narrow(1, start, A) * m,
                                                          KlEstimator::K3);
  }
  return config_.token_mean ? masked_mean(per_token, mask) : sequence_mean(per_token, mask);
}

}  // namespace troupe::rl
