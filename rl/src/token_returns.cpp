#include <troupe/rl/token_returns.hpp>

#include <vector>

#include <torch/torch.h>

namespace troupe::rl {

torch::Tensor kl_shaped_rewards(const torch::Tensor& score, const torch::Tensor& kl, const torch::Tensor& answer_mask,
                                double kl_coef) {
  TORCH_CHECK(kl.dim() == 2 && kl.sizes() == answer_mask.sizes(), "kl_shaped_rewards: kl ", kl.sizes(),
              " and answer_mask ", answer_mask.sizes(), " must both be (B, A)");
  TORCH_CHECK(score.dim() == 1 && score.size(0) == kl.size(0), "kl_shaped_rewards: score must be (B,) = (",
              kl.size(0), "), got ", score.sizes());
  torch::NoGradGuard no_grad;
  const auto m = answer_mask.ne(0);                                          // (B, A)
  const auto zero = torch::zeros({}, kl.options());
  auto rewards = torch::where(m, -kl_coef * kl.detach(), zero);              // (B, A)
  const auto positions = torch::arange(kl.size(1), kl.options().dtype(torch::kLong));  // (A,)
  const auto last = torch::where(m, positions.unsqueeze(0), torch::full({}, -1L, positions.options()))
                        .amax(1, /*keepdim=*/true);                          // (B, 1) -1 = no action
  const auto has_action = last.ge(0);                                        // (B, 1)
  const auto end_score = torch::where(has_action, score.detach().to(kl.scalar_type()).unsqueeze(1), zero);  // (B, 1)
  return rewards.scatter_add(1, last.clamp_min(0), end_score);
}

torch::Tensor discounted_returns(const torch::Tensor& rewards, const torch::Tensor& answer_mask, double gamma) {
  TORCH_CHECK(rewards.dim() == 2 && rewards.sizes() == answer_mask.sizes(), "discounted_returns: rewards ",
              rewards.sizes(), " and answer_mask ", answer_mask.sizes(), " must both be (B, A)");
  torch::NoGradGuard no_grad;
  const auto r = torch::where(answer_mask.ne(0), rewards.detach(), torch::zeros({}, rewards.options()));  // (B, A)
  const int64_t A = r.size(1);
  std::vector<torch::Tensor> columns(static_cast<size_t>(A));  // each (B,)
  auto running = torch::zeros({r.size(0)}, r.options());        // (B,)
  for (int64_t t = A - 1; t >= 0; --t) {
    running = r.select(1, t) + gamma * running;
    columns[static_cast<size_t>(t)] = running;
  }
  return A == 0 ? r.clone() : torch::stack(columns, 1);  // (B, A)
}

torch::Tensor normalize_over_tokens(const torch::Tensor& x, const torch::Tensor& mask) {
  TORCH_CHECK(x.sizes() == mask.sizes(), "normalize_over_tokens: x ", x.sizes(), " and mask ", mask.sizes(),
              " must have the same shape");
  torch::NoGradGuard no_grad;
  const auto keep = mask.ne(0);
  const auto zero = torch::zeros({}, x.options());
  const auto n = keep.sum().to(x.scalar_type()).clamp_min(1);                  // ()
  const auto mean = torch::where(keep, x, zero).sum() / n;                      // ()
  const auto var = torch::where(keep, (x - mean).pow(2), zero).sum() / n;       // () population, as OpenRLHF
  return torch::where(keep, (x - mean) * var.clamp_min(1e-8).rsqrt(), zero);   // (B, A)
}

}  // namespace troupe::rl
