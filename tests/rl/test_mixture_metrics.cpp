/// The mixture (ptx) loss against torch's cross-entropy, and the experience metrics by hand.
#include <troupe/rl/experience_metrics.hpp>
#include <troupe/rl/mixture.hpp>

#include "rl_fixtures.hpp"

using namespace troupe;

TEST_CASE("causal_lm_loss equals torch's cross-entropy on shifted labels", "[mixture]") {
  torch::manual_seed(9);
  const auto logits = 3.0 * torch::randn({2, 7, 11});              // (B, T, V)
  auto labels = torch::randint(0, 11, {2, 7}, torch::kLong);        // (B, T)
  labels[1][5] = -100;                                              // ignored
  const auto expected = torch::nn::functional::cross_entropy(
      logits.narrow(1, 0, 6).reshape({-1, 11}), labels.narrow(1, 1, 6).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
  CHECK(rl::causal_lm_loss(logits, labels).item<double>() == Approx(expected.item<double>()).margin(1e-6));
  CHECK(rl::mixture_loss(logits, labels, 27.8).item<double>() ==
        Approx(27.8 * expected.item<double>()).margin(1e-4));
}

TEST_CASE("experience metrics by hand", "[metrics][by_hand]") {
  // P = 1, T = 4: row 0 has 3 actions, row 1 has 1 (then padding).
  auto exp = rl::Experience::from_generation(torch::ones({2, 1}, torch::kLong), torch::ones({2, 4}, torch::kLong),
                                             torch::tensor({{1, 1, 1, 1}, {1, 1, 0, 0}}, torch::kLong));
  exp.logprobs = torch::tensor({{-1.0f, -1.0f, -1.0f}, {-1.0f, 9.0f, 9.0f}});
  exp.ref_logprobs = torch::tensor({{-1.5f, -1.0f, -2.0f}, {-1.25f, 0.0f, 0.0f}});  // k1: 0.5, 0, 1 | 0.25
  exp.reward_score = torch::tensor({2.0f, -1.0f});
  const auto m = rl::experience_metrics(exp);
  CHECK(m.at("reward_score") == Approx(0.5));
  CHECK(m.at("answer_length") == Approx(2.0));
  CHECK(m.at("kl") == Approx((0.5 + 0 + 1 + 0.25) / 4));
  CHECK(m.at("kl_per_answer") == Approx((1.5 + 0.25) / 2));
  CHECK(m.count("advantage") == 0);
}

TEST_CASE("approx_kl by hand: half the mean squared log-ratio over action tokens", "[metrics][by_hand]") {
  // P = 1, T = 4: row 0 has 3 actions, row 1 has 1; padding's log-probs must not count.
  auto exp = rl::Experience::from_generation(torch::ones({2, 1}, torch::kLong), torch::ones({2, 4}, torch::kLong),
                                             torch::tensor({{1, 1, 1, 1}, {1, 1, 0, 0}}, torch::kLong));
  exp.logprobs = torch::tensor({{-1.0f, -1.0f, -1.0f}, {-1.0f, 9.0f, 9.0f}});
  const auto same = exp.logprobs.clone();
  CHECK(rl::approx_kl(same, exp) == 0.0);
  const auto moved = torch::tensor({{-1.5f, -1.0f, -0.0f}, {-1.25f, -50.0f, 3.0f}});  // diffs 0.5, 0, 1 | 0.25
  CHECK(rl::approx_kl(moved, exp) == Approx(0.5 * (0.25 + 0 + 1 + 0.0625) / 4));
  CHECK_THROWS(rl::approx_kl(torch::zeros({2, 2}), exp));
}
