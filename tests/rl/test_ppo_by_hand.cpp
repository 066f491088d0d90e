/// Tiny PPO cases small enough to check by eye: one sequence, three actions.
#include <cmath>

#include <troupe/rl/experience.hpp>
#include <troupe/rl/gae.hpp>
#include <troupe/rl/ppo.hpp>
#include <troupe/rl/reward_shaping.hpp>

#include "rl_fixtures.hpp"

using namespace troupe;

namespace {

/// Prompt [5, 6] (P = 2), answer [7, 8, EOS=2], then one pad: T = 6, so Token positions
/// 0..4 and the actions sit at 1, 2, 3 (start = P - 1 = 1); position 4 is padding.
rl::Experience one_sequence() {
  auto exp = rl::Experience::from_generation(torch::tensor({{5, 6}}, torch::kLong),
                                             torch::tensor({{5, 6, 7, 8, 2, 0}}, torch::kLong),
                                             torch::tensor({{1, 1, 1, 1, 1, 0}}, torch::kLong));
  // Position 0 scores the prompt token 6 (not an action); position 4 is padding: junk there.
  exp.logprobs = torch::tensor({{-9.0f, -1.0f, -2.0f, -0.5f, -7.0f}});
  exp.ref_logprobs = torch::tensor({{-3.0f, -1.5f, -2.0f, -1.0f, -1.0f}});  // log-ratio 0.5, 0, 0.5
  exp.values = torch::tensor({{8.0f, 1.0f, 2.0f, 3.0f, 10.0f}});
  exp.reward_score = torch::tensor({7.0f});  // clamped to 5
  return exp;
}

}  // namespace

TEST_CASE("PPO by hand: rewards, GAE and returns of one sequence with 3 actions", "[ppo][by_hand]") {
  auto exp = one_sequence();
  REQUIRE(exp.start() == 1);
  CHECK(rl::answer_ends(exp.action_mask, exp.start()).item<int64_t>() == 4);  // EOS included, no +1

  rl::Ppo ppo;  // kl_ctl 0.1, clip 5, gamma 1, lam 0.95
  ppo.compute_advantages(exp);
  // -0.1 * log-ratio on each action; the EOS action (position 3) also gets clamp(7) = 5.
  CHECK_CLOSE(exp.rewards, torch::tensor({{0.0f, -0.05f, 0.0f, -0.05f + 5.0f, 0.0f}}), 1e-6);
  // The padding position's value 10 is zeroed, so the last action bootstraps from 0.
  CHECK_CLOSE(exp.values, torch::tensor({{8.0f, 1.0f, 2.0f, 3.0f, 0.0f}}), 0.0);
  // Backwards: delta_3 = 4.95 + 0 - 3 = 1.95;            A_3 = 1.95
  //            delta_2 = 0 + 3 - 2 = 1;                  A_2 = 1 + 0.95 * 1.95 = 2.8525
  //            delta_1 = -0.05 + 2 - 1 = 0.95;           A_1 = 0.95 + 0.95 * 2.8525 = 3.659875
  // Answer positions 1..4; the padding position 4 has reward 0 and value 0, so A = R = 0.
  CHECK_CLOSE(exp.advantages, torch::tensor({{3.659875f, 2.8525f, 1.95f, 0.0f}}), 1e-6);
  CHECK_CLOSE(exp.returns, torch::tensor({{3.659875f + 1, 2.8525f + 2, 1.95f + 3, 0.0f}}), 1e-6);
}

TEST_CASE("PPO by hand: gamma and lam enter GAE as written", "[ppo][by_hand]") {
  const auto values = torch::tensor({{0.0f, 1.0f, 2.0f}});   // (1, 3)
  const auto rewards = torch::tensor({{0.0f, 0.5f, 1.0f}});  // (1, 3)
  const auto out = rl::gae_advantages_and_returns(values, rewards, /*start=*/1, /*gamma=*/0.5, /*lam=*/0.5);
  // t = 2: delta = 1 + 0.5 * 0 - 2 = -1;       A = -1
  // t = 1: delta = 0.5 + 0.5 * 2 - 1 = 0.5;    A = 0.5 + 0.25 * -1 = 0.25
  CHECK_CLOSE(out.advantages, torch::tensor({{0.25f, -1.0f}}), 1e-7);
  CHECK_CLOSE(out.returns, torch::tensor({{1.25f, 1.0f}}), 1e-7);
}

TEST_CASE("PPO by hand: the clipped actor loss takes the pessimistic side", "[ppo][by_hand]") {
  auto exp = one_sequence();
  rl::Ppo ppo;  // cliprange 0.2
  ppo.compute_advantages(exp);  // A = 3.659875, 2.8525, 1.95 on the actions (all positive)
  // New policy: ratios 1, 1.5 and 0.5 on the three actions; junk on non-actions.
  auto new_logprobs = exp.logprobs.clone();
  new_logprobs[0][2] += std::log(1.5f);
  new_logprobs[0][3] += std::log(0.5f);
  new_logprobs[0][4] = 100.0f;
  // Per action max(-A r, -A clip(r, 0.8, 1.2)): r = 1 -> -A; r = 1.5 -> -1.2 A (clipped);
  // r = 0.5 -> -0.5 A (the unclipped side is larger).
  const double expected = (-3.659875 - 1.2 * 2.8525 - 0.5 * 1.95) / 3;
  CHECK(ppo.policy_loss(new_logprobs, exp).item<double>() == Approx(expected).margin(1e-5));
}

TEST_CASE("PPO by hand: the clipped value loss", "[ppo][by_hand]") {
  auto exp = one_sequence();
  rl::Ppo ppo;  // cliprange_value 0.2
  ppo.compute_advantages(exp);  // old values 1, 2, 3; returns 4.659875, 4.8525, 4.95
  const auto new_values = torch::tensor({{0.0f, 1.5f, 2.1f, 2.0f, -50.0f}});
  // Clipped to old +- 0.2: 1.2, 2.1, 2.8. Per action the larger squared error:
  //   1.5 vs 1.2 -> (1.2 - 4.659875)^2;  2.1 -> (2.1 - 4.8525)^2;  2.0 vs 2.8 -> (2.0 - 4.95)^2
  const double expected =
      0.5 * (std::pow(1.2 - 4.659875, 2) + std::pow(2.1 - 4.8525, 2) + std::pow(2.0 - 4.95, 2)) / 3;
  CHECK(ppo.value_loss(new_values, exp).item<double>() == Approx(expected).margin(1e-5));
}

TEST_CASE("PPO by hand: a negative score is clamped and lands on the EOS", "[ppo][by_hand]") {
  auto exp = one_sequence();
  exp.reward_score = torch::tensor({-12.0f});
  const auto rewards = rl::compute_rewards(exp.logprobs, exp.ref_logprobs, exp.reward_score, exp.action_mask,
                                           exp.start(), /*kl_ctl=*/0.0, /*clip_reward_value=*/5.0);
  CHECK_CLOSE(rewards, torch::tensor({{0.0f, 0.0f, 0.0f, -5.0f, 0.0f}}), 0.0);
}
