#include <troupe/rl/reward_normalization.hpp>

#include <cmath>

#include <torch/torch.h>

#include "require.hpp"

namespace troupe::rl {
namespace {

constexpr double kStdEps = 1e-8;

}  // namespace

RewardOptions RewardOptions::from_options(const AlgorithmOptions& options, const std::string& algorithm) {
  RewardOptions r;
  const double mode = options.get("normalize_reward", 0.0);
  require_choice(algorithm, "normalize_reward", mode, {0, 1, 2}, "0 = off, 1 = batch, 2 = running");
  r.normalize = static_cast<RewardNormalization>(static_cast<int>(mode));
  r.clip = options.get("reward_clip", r.clip);
  require_range(algorithm, "reward_clip", r.clip, 0.0, 1e9);
  return r;
}

void RunningMoments::update(const torch::Tensor& x) {
  const auto values = x.detach().to(torch::kCPU, torch::kDouble).reshape({-1});  // (N,)
  const int64_t n = values.numel();
  if (n == 0) return;
  const double batch_mean = values.mean().item<double>();
  const double batch_m2 = (values - batch_mean).pow(2).sum().item<double>();
  const int64_t total = count_ + n;
  const double delta = batch_mean - mean_;
  mean_ += delta * static_cast<double>(n) / static_cast<double>(total);
  m2_ += batch_m2 + delta * delta * static_cast<double>(count_) * static_cast<double>(n) / static_cast<double>(total);
  count_ = total;
}

double RunningMoments::stddev() const { return count_ < 2 ? 0.0 : std::sqrt(m2_ / static_cast<double>(count_ - 1)); }

std::map<std::string, double> RunningMoments::state() const {
  return {{"reward_count", static_cast<double>(count_)}, {"reward_mean", mean_}, {"reward_m2", m2_}};
}

void RunningMoments::restore_state(const std::map<std::string, double>& state) {
  auto value = [&](const char* key) {
    const auto it = state.find(key);
    if (it == state.end()) throw Error(std::string("reward statistics: the checkpoint has no ") + key);
    return it->second;
  };
  count_ = static_cast<int64_t>(value("reward_count"));
  mean_ = value("reward_mean");
  m2_ = value("reward_m2");
}

torch::Tensor RewardNormalizer::operator()(const torch::Tensor& scores) {
  TORCH_CHECK(scores.dim() == 1, "reward normalisation: scores must be (B,), got ", scores.sizes());
  torch::NoGradGuard no_grad;
  auto s = scores.detach().to(torch::kDouble);  // (B,) the statistics in double, as the running ones
  switch (options_.normalize) {
    case RewardNormalization::None: break;
    case RewardNormalization::Batch: {
      const double spread = s.numel() < 2 ? 0.0 : s.std().item<double>();
      s = (s - s.mean()) / (spread + kStdEps);
      break;
    }
    case RewardNormalization::Running:
      running_.update(s);
      s = (s - running_.mean()) / (running_.stddev() + kStdEps);
      break;
  }
  if (options_.clip > 0) s = s.clamp(-options_.clip, options_.clip);
  return s.to(torch::kFloat);
}

}  // namespace troupe::rl
