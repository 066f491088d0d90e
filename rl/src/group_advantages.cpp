#include <troupe/rl/group_advantages.hpp>

#include <torch/torch.h>

namespace troupe::rl {

torch::Tensor group_normalized_advantages(const torch::Tensor& scores, int64_t group_size, double eps,
                                          bool scale) {
  TORCH_CHECK(scores.dim() == 1, "group_normalized_advantages: scores must be (B,), got ", scores.sizes());
  TORCH_CHECK(group_size >= 2, "group_normalized_advantages: group_size must be >= 2 (a std needs two samples), got ",
              group_size);
  TORCH_CHECK(scores.size(0) % group_size == 0, "group_normalized_advantages: batch of ", scores.size(0),
              " is not a whole number of groups of ", group_size);
  torch::NoGradGuard no_grad;
  const auto s = scores.to(torch::isFloatingType(scores.scalar_type()) ? scores.scalar_type() : torch::kFloat);
  const auto grouped = s.view({-1, group_size});             // (G, n)
  const auto mean = grouped.mean(1, /*keepdim=*/true);       // (G, 1)
  auto centred = grouped - mean;                             // (G, n)
  if (scale) centred = centred / (grouped.std(1, /*unbiased=*/true, /*keepdim=*/true) + eps);
  return centred.reshape({-1});                              // (B,)
}

torch::Tensor broadcast_over_actions(const torch::Tensor& advantages, const torch::Tensor& answer_mask) {
  TORCH_CHECK(advantages.dim() == 1 && answer_mask.dim() == 2 && answer_mask.size(0) == advantages.size(0),
              "broadcast_over_actions: advantages must be (B,) and answer_mask (B, A), got ", advantages.sizes(),
              " and ", answer_mask.sizes());
  return advantages.unsqueeze(1) * answer_mask.to(advantages.scalar_type());  // (B, A)
}

}  // namespace troupe::rl
