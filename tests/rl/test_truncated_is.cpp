/// Truncated importance sampling (--rollout_is_truncation) against a hand-written
/// PyTorch-style reference: each token's clipped surrogate times min(exp(old - rollout), C).
#include <cmath>

#include <torch/torch.h>

#include <troupe/rl/experience.hpp>
#include <troupe/rl/policy_loss.hpp>
#include <troupe/rl/ppo.hpp>
#include <troupe/rl/truncated_is.hpp>

#include "rl_fixtures.hpp"

using namespace troupe;

namespace {

/// Three rows, prompt P = 3, T = 8 (answers of 5, 3 and 4 tokens, then padding), with
/// old, rollout and new log-probs and advantages drawn at random.
struct Case {
  rl::Experience exp;
  torch::Tensor rollout;  // (B, T-1)
  torch::Tensor fresh;    // (B, T-1) the training policy's, with autograd
};

Case make_case(double cap) {
  torch::manual_seed(7);
  const auto sequences = torch::randint(3, 50, {3, 8}, torch::kLong);  // (B, T)
  auto mask = torch::ones({3, 8}, torch::kLong);                          // (B, T)
  mask.index_put_({1, torch::indexing::Slice(6, torch::indexing::None)}, 0);
  mask.index_put_({2, 7}, 0);
  Case c{rl::Experience::from_generation(sequences.slice(1, 0, 3), sequences, mask), {}, {}};
  c.exp.logprobs = -torch::rand({3, 7}) * 3;                                 // (B, T-1)
  c.rollout = c.exp.logprobs + torch::randn({3, 7}) * 0.7;                   // (B, T-1) off by up to ~e^2
  c.exp.advantages = torch::randn({3, 5});                                   // (B, A)
  c.fresh = (c.exp.logprobs + torch::randn({3, 7}) * 0.3).requires_grad_();  // ratios in and out of the clip
  if (cap > 0)
    c.exp.set_extra(rl::kTruncatedIsWeights, rl::Layout::Token, rl::truncated_is_weights(c.exp.logprobs, c.rollout, cap));
  return c;
}

/// PyTorch as one would write it: token-mean of the weighted clipped surrogate.
torch::Tensor reference_loss(const Case& c, double cap, double cliprange) {
  const int64_t start = 2, A = 5;
  const auto old = c.exp.logprobs.narrow(1, start, A);                       // (B, A)
  const auto fresh = c.fresh.narrow(1, start, A);                            // (B, A)
  const auto mask = c.exp.attention_mask.slice(1, 1).narrow(1, start, A).to(torch::kFloat);  // (B, A)
  const auto ratio = torch::exp(fresh - old);
  const auto pg = torch::max(-c.exp.advantages * ratio, -c.exp.advantages * torch::clamp(ratio, 1 - cliprange, 1 + cliprange));
  const auto weight = cap > 0 ? torch::clamp_max(torch::exp(old - c.rollout.narrow(1, start, A)), cap) : torch::ones_like(old);
  return (pg * weight * mask).sum() / mask.sum();
}

}  // namespace

TEST_CASE("truncated IS weights are the old/rollout ratio capped above only", "[truncated_is]") {
  const auto old = torch::tensor({{-1.0f, -2.0f, -0.5f}});
  const auto rollout = torch::tensor({{-1.0f, -1.0f, -3.0f}});
  // exp(0) = 1, exp(-1) = 0.368 (kept: no lower clip), exp(2.5) = 12.2 -> 2
  CHECK_CLOSE(rl::truncated_is_weights(old, rollout, 2.0), torch::tensor({{1.0f, std::exp(-1.0f), 2.0f}}), 1e-6);
  CHECK_THROWS(rl::truncated_is_weights(old, rollout, 0.0));
}

TEST_CASE("PPO's actor loss with truncated IS matches the PyTorch reference, value and gradient", "[truncated_is]") {
  for (const double cap : {0.0, 1.5, 5.0}) {
    auto c = make_case(cap);
    const auto loss = rl::Ppo().policy_loss(c.fresh, c.exp);
    const auto grad = torch::autograd::grad({loss}, {c.fresh})[0];
    const auto expected = reference_loss(c, cap, 0.2);
    const auto expected_grad = torch::autograd::grad({expected}, {c.fresh})[0];
    INFO("cap " << cap);
    CHECK(loss.item<double>() == Approx(expected.item<double>()).epsilon(1e-5));
    CHECK_CLOSE(grad, expected_grad, 1e-6);
  }
}

TEST_CASE("the critic-free policy loss weights its surrogate the same way", "[truncated_is]") {
  auto c = make_case(1.5);
  rl::PolicyLossOptions options;  // token mean, no KL term
  const auto loss = rl::clipped_policy_loss(c.fresh, c.exp, options, "grpo");
  CHECK(loss.item<double>() == Approx(reference_loss(c, 1.5, options.cliprange).item<double>()).epsilon(1e-5));
  // The weights change the loss: the same batch without them gives the unweighted one.
  c.exp.extras.erase(rl::kTruncatedIsWeights);
  const auto plain = rl::clipped_policy_loss(c.fresh, c.exp, options, "grpo");
  CHECK(plain.item<double>() == Approx(reference_loss(c, 0, options.cliprange).item<double>()).epsilon(1e-5));
  CHECK(plain.item<double>() != Approx(loss.item<double>()).epsilon(1e-3));
}
