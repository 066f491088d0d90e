#include <troupe/rl/ppo_losses.hpp>

#include <torch/torch.h>

#include <troupe/rl/masked_ops.hpp>

namespace troupe::rl {
namespace {

void check_shapes(const char* where, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c,
                  const torch::Tensor& mask) {
  TORCH_CHECK(a.sizes() == mask.sizes() && b.sizes() == mask.sizes() && c.sizes() == mask.sizes(), where,
              ": all inputs must have the mask's shape ", mask.sizes(), ", got ", a.sizes(), ", ", b.sizes(),
              ", ", c.sizes());
}

}  // namespace

torch::Tensor clipped_surrogate(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                                const torch::Tensor& advantages, const torch::Tensor& mask, double cliprange) {
  check_shapes("clipped_surrogate", logprobs, old_logprobs, advantages, mask);
  const auto m = mask.to(logprobs.scalar_type());
  // Masking the log-ratio keeps padding (where log-probs may be anything) from overflowing exp.
  const auto ratio = torch::exp((logprobs - old_logprobs) * m);                     // (B, L)
  const auto unclipped = -advantages * ratio;                                          // (B, L)
  const auto clipped = -advantages * torch::clamp(ratio, 1.0 - cliprange, 1.0 + cliprange);  // (B, L)
  return torch::max(unclipped, clipped);
}

torch::Tensor ppo_actor_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                             const torch::Tensor& advantages, const torch::Tensor& mask, double cliprange) {
  return masked_mean(clipped_surrogate(logprobs, old_logprobs, advantages, mask, cliprange), mask);
}

torch::Tensor clipped_value_error(const torch::Tensor& values, const torch::Tensor& old_values,
                                  const torch::Tensor& returns, double cliprange_value) {
  TORCH_CHECK(values.sizes() == old_values.sizes() && values.sizes() == returns.sizes(),
              "clipped_value_error: values ", values.sizes(), ", old_values ", old_values.sizes(), " and returns ",
              returns.sizes(), " must have one shape");
  const auto clipped_values =
      torch::clamp(values, old_values - cliprange_value, old_values + cliprange_value);  // (B, L)
  const auto loss1 = (values - returns).pow(2);                                          // (B, L)
  const auto loss2 = (clipped_values - returns).pow(2);                                  // (B, L)
  return torch::max(loss1, loss2);
}

torch::Tensor ppo_value_loss(const torch::Tensor& values, const torch::Tensor& old_values,
                             const torch::Tensor& returns, const torch::Tensor& mask, double cliprange_value) {
  check_shapes("ppo_value_loss", values, old_values, returns, mask);
  return 0.5 * masked_mean(clipped_value_error(values, old_values, returns, cliprange_value), mask);
}

torch::Tensor clip_fraction(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                            const torch::Tensor& mask, double cliprange) {
  TORCH_CHECK(logprobs.sizes() == mask.sizes() && old_logprobs.sizes() == mask.sizes(),
              "clip_fraction: logprobs ", logprobs.sizes(), " and old_logprobs ", old_logprobs.sizes(),
              " must have the mask's shape ", mask.sizes());
  torch::NoGradGuard no_grad;
  const auto ratio = torch::exp((logprobs - old_logprobs) * mask.to(logprobs.scalar_type()));  // (B, L)
  const auto outside = (ratio - 1.0).abs().gt(cliprange).to(logprobs.scalar_type());           // (B, L)
  return masked_mean(outside, mask);
}

}  // namespace troupe::rl
