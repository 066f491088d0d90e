#include <troupe/rl/reward_shaping.hpp>

#include <torch/torch.h>

namespace troupe::rl {
namespace {

void check_mask_start(const char* where, const torch::Tensor& action_mask, int64_t start) {
  TORCH_CHECK(action_mask.dim() == 2, where, ": action_mask must be (B, L), got ", action_mask.sizes());
  TORCH_CHECK(start >= 0 && start < action_mask.size(1), where, ": start ", start,
              " must be in [0, L) with L = ", action_mask.size(1));
}

}  // namespace

torch::Tensor answer_ends(const torch::Tensor& action_mask, int64_t start) {
  check_mask_start("answer_ends", action_mask, start);
  const int64_t L = action_mask.size(1);
  return action_mask.narrow(1, start, L - start).ne(0).sum(1).to(torch::kLong) + start;  // (B,)
}

torch::Tensor answer_span_mask(const torch::Tensor& action_mask, int64_t start, torch::ScalarType dtype) {
  const auto ends = answer_ends(action_mask, start);  // (B,)
  const auto t = torch::arange(action_mask.size(1), action_mask.options().dtype(torch::kLong));  // (L,)
  return (t.ge(start).unsqueeze(0) & t.unsqueeze(0).lt(ends.unsqueeze(1))).to(dtype);  // (B, L)
}

torch::Tensor compute_rewards(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs,
                              const torch::Tensor& reward_score, const torch::Tensor& action_mask,
                              int64_t start, double kl_ctl, double clip_reward_value) {
  check_mask_start("compute_rewards", action_mask, start);
  TORCH_CHECK(logprobs.sizes() == action_mask.sizes() && ref_logprobs.sizes() == action_mask.sizes(),
              "compute_rewards: logprobs ", logprobs.sizes(), ", ref_logprobs ", ref_logprobs.sizes(),
              " and action_mask ", action_mask.sizes(), " must all be (B, L)");
  TORCH_CHECK(reward_score.dim() == 1 && reward_score.size(0) == action_mask.size(0),
              "compute_rewards: reward_score must be (B,) = (", action_mask.size(0), "), got ", reward_score.sizes());
  torch::NoGradGuard no_grad;
  const auto span = answer_span_mask(action_mask, start, logprobs.scalar_type());  // (B, L)
  auto rewards = -kl_ctl * (logprobs - ref_logprobs) * span;                     // (B, L)
  const auto ends = answer_ends(action_mask, start);                             // (B,)
  const auto has_action = ends.gt(start).to(rewards.scalar_type());              // (B,)
  const auto score = reward_score.to(rewards.scalar_type())
                         .clamp(-clip_reward_value, clip_reward_value) * has_action;  // (B,)
  const auto last = (ends - 1).clamp_min(0).unsqueeze(1);                        // (B, 1)
  return rewards.scatter_add(1, last, score.unsqueeze(1));
}

torch::Tensor zero_past_end(const torch::Tensor& x, const torch::Tensor& action_mask, int64_t start) {
  check_mask_start("zero_past_end", action_mask, start);
  TORCH_CHECK(x.sizes() == action_mask.sizes(), "zero_past_end: x ", x.sizes(), " and action_mask ",
              action_mask.sizes(), " must both be (B, L)");
  const auto ends = answer_ends(action_mask, start);  // (B,)
  const auto t = torch::arange(x.size(1), ends.options());  // (L,)
  return x * t.unsqueeze(0).lt(ends.unsqueeze(1)).to(x.scalar_type());  // (B, L)
}

}  // namespace troupe::rl
