#include <troupe/rl/gae.hpp>

#include <vector>

#include <torch/torch.h>

namespace troupe::rl {

AdvantagesAndReturns gae_advantages_and_returns(const torch::Tensor& values, const torch::Tensor& rewards,
                                                int64_t start, double gamma, double lam) {
  TORCH_CHECK(values.dim() == 2 && values.sizes() == rewards.sizes(), "gae_advantages_and_returns: values ",
              values.sizes(), " and rewards ", rewards.sizes(), " must both be (B, L)");
  TORCH_CHECK(start >= 0 && start < values.size(1), "gae_advantages_and_returns: start ", start,
              " must be in [0, L) with L = ", values.size(1));
  torch::NoGradGuard no_grad;
  const int64_t L = values.size(1);
  const auto v = values.detach();  // (B, L)
  // Columns are computed one at a time (the recursion is sequential in t) and stacked
  // once at the end; answers are at most a few hundred tokens.
  std::vector<torch::Tensor> reversed;  // each (B,)
  reversed.reserve(static_cast<size_t>(L - start));
  torch::Tensor last_gae = torch::zeros({values.size(0)}, v.options());  // (B,)
  for (int64_t t = L - 1; t >= start; --t) {
    const auto next_values = t < L - 1 ? v.select(1, t + 1) : torch::zeros_like(last_gae);  // (B,)
    const auto delta = rewards.select(1, t) + gamma * next_values - v.select(1, t);        // (B,)
    last_gae = delta + gamma * lam * last_gae;
    reversed.push_back(last_gae);
  }
  std::reverse(reversed.begin(), reversed.end());
  auto advantages = torch::stack(reversed, 1);                      // (B, L - start)
  auto returns = advantages + v.narrow(1, start, L - start);         // (B, L - start)
  return {advantages, returns};
}

}  // namespace troupe::rl
