#include <troupe/rl/truncated_is.hpp>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::rl {

torch::Tensor truncated_is_weights(const torch::Tensor& old_logprobs, const torch::Tensor& rollout_logprobs,
                                   double cap) {
  if (!(cap > 0)) throw Error("truncated_is_weights: the cap must be > 0, got " + std::to_string(cap));
  TORCH_CHECK(old_logprobs.sizes() == rollout_logprobs.sizes(), "truncated_is_weights: old log-probs ",
              old_logprobs.sizes(), " and rollout log-probs ", rollout_logprobs.sizes(), " differ");
  // Only the clip's upper side: a token the sampler over-weighted keeps its small ratio.
  return (old_logprobs.detach() - rollout_logprobs.detach()).exp().clamp_max(cap);  // (B, T-1)
}

torch::Tensor apply_truncated_is(const torch::Tensor& per_token, const Experience& exp) {
  const auto found = exp.extras.find(kTruncatedIsWeights);
  if (found == exp.extras.end() || !found->second.second.defined()) return per_token;
  const auto weights = found->second.second.narrow(1, exp.start(), exp.answer_length());  // (B, A)
  TORCH_CHECK(weights.sizes() == per_token.sizes(), "truncated IS: weights ", weights.sizes(),
              " do not match the per-token loss ", per_token.sizes());
  return per_token * weights.to(per_token.dtype());
}

}  // namespace troupe::rl
