#include <troupe/rl/group_advantages.hpp>

#include <torch/torch.h>

namespace troupe::rl {
namespace {

struct GroupStats {
  torch::Tensor mean;   // (B,) the mean score of each row's group
  torch::Tensor count;  // (B,) the rows of each row's group
};

GroupStats group_stats(const torch::Tensor& scores, const torch::Tensor& groups, const char* where) {
  TORCH_CHECK(scores.dim() == 1 && groups.dim() == 1 && scores.size(0) == groups.size(0), where,
              ": scores and groups must both be (B,), got ", scores.sizes(), " and ", groups.sizes());
  const auto s = scores.detach().to(torch::kFloat);  // (B,)
  const auto g = groups.to(s.device(), torch::kLong);  // (B,)
  const int64_t G = s.numel() == 0 ? 0 : g.max().item<int64_t>() + 1;
  const auto sums = torch::zeros({G}, s.options()).index_add_(0, g, s);                      // (G,)
  const auto counts = torch::zeros({G}, s.options()).index_add_(0, g, torch::ones_like(s));  // (G,)
  return {(sums / counts.clamp_min(1)).index_select(0, g), counts.index_select(0, g)};
}

}  // namespace

torch::Tensor prompt_groups(const torch::Tensor& prompts, int64_t group_size) {
  TORCH_CHECK(prompts.dim() == 2, "prompt_groups: prompts must be (B, P), got ", prompts.sizes());
  TORCH_CHECK(group_size >= 1, "prompt_groups: group_size must be >= 1, got ", group_size);
  const int64_t B = prompts.size(0);
  auto groups = torch::zeros({B}, torch::kLong);  // (B,)
  if (B == 0) return groups.to(prompts.device());
  const auto p = prompts.to(torch::kCPU);
  const auto same_as_previous = (p.narrow(0, 1, B - 1) == p.narrow(0, 0, B - 1)).all(1);  // (B-1,)
  auto same = same_as_previous.accessor<bool, 1>();
  auto out = groups.accessor<int64_t, 1>();
  int64_t group = 0, rows_in_group = 1;
  for (int64_t b = 1; b < B; ++b) {
    if (!same[b - 1] || rows_in_group == group_size) {
      ++group;
      rows_in_group = 0;
    }
    out[b] = group;
    ++rows_in_group;
  }
  return groups.to(prompts.device());
}

torch::Tensor group_centered(const torch::Tensor& scores, const torch::Tensor& groups) {
  torch::NoGradGuard no_grad;
  const auto stats = group_stats(scores, groups, "group_centered");
  return scores.detach().to(torch::kFloat) - stats.mean;  // (B,)
}

torch::Tensor group_normalized_advantages(const torch::Tensor& scores, const torch::Tensor& groups, double eps,
                                          bool scale) {
  torch::NoGradGuard no_grad;
  const auto stats = group_stats(scores, groups, "group_normalized_advantages");
  const auto centred = scores.detach().to(torch::kFloat) - stats.mean;  // (B,)
  if (!scale) return centred;
  const auto g = groups.to(centred.device(), torch::kLong);             // (B,)
  const int64_t G = centred.numel() == 0 ? 0 : g.max().item<int64_t>() + 1;
  const auto squares = torch::zeros({G}, centred.options()).index_add_(0, g, centred.pow(2)).index_select(0, g);  // (B,)
  const auto n = stats.count;
  const auto spread = (squares / (n - 1).clamp_min(1)).sqrt();  // (B,) Bessel std
  return torch::where(n.gt(1), centred / (spread + eps), torch::zeros_like(centred));
}

torch::Tensor leave_one_out_advantages(const torch::Tensor& scores, const torch::Tensor& groups) {
  torch::NoGradGuard no_grad;
  const auto stats = group_stats(scores, groups, "leave_one_out_advantages");
  const auto s = scores.detach().to(torch::kFloat);  // (B,)
  // mean of the others = (n * mean - s) / (n - 1), so s minus it = n / (n - 1) * (s - mean).
  const auto n = stats.count;
  return torch::where(n.gt(1), (s - stats.mean) * n / (n - 1).clamp_min(1), torch::zeros_like(s));  // (B,)
}

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
