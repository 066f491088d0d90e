/// GRPO's KL options: the loss term with k1, k2 or k3, or the KL as a reward penalty
/// (OpenRLHF's group_norm with the KL in the reward), by hand and against PyTorch.
#include <cmath>

#include <troupe/common/error.hpp>
#include <troupe/rl/grpo.hpp>

#include "algorithm_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

TEST_CASE("GRPO KL in the reward by hand", "[grpo][by_hand]") {
  // One group scored 0 and 1, unscaled: advantages -0.5 and 0.5. Row 0's two actions have
  // k1 log-ratios 0.2 and 0.4; with kl_coef 0.5 each token loses 0.5 * the KL from it to
  // the end: -0.5 - 0.5 * 0.6 = -0.8, -0.5 - 0.5 * 0.4 = -0.7.
  auto exp = troupe::test::small_experience({3, 3}, {2, 2}, {0.0f, 1.0f});
  exp.logprobs[0][1] = 0.2f;
  exp.logprobs[0][2] = 0.4f;
  auto grpo = rl::AlgorithmRegistry::global().create(
      "grpo", {{"samples_per_prompt", 2}, {"scale_rewards", 0}, {"kl_coef", 0.5}, {"kl_estimator", 1}, {"kl_in_reward", 1}});
  grpo->compute_advantages(exp);
  CHECK_CLOSE(exp.advantages, torch::tensor({{-0.8f, -0.7f, 0.0f, 0.0f}, {0.5f, 0.5f, 0.0f, 0.0f}}), 1e-6);
  // No KL loss term then: at ratio 1 the loss is the mean of -A per answer.
  CHECK(grpo->policy_loss(exp.logprobs, exp).item<double>() == Approx(((0.8 + 0.7) / 2 - 0.5) / 2).margin(1e-6));
}

TEST_CASE("GRPO reward_clip clamps the scores before the groups", "[grpo][by_hand]") {
  // Scores 0 and 10 clipped to 0 and 1: mean 0.5, std sqrt(0.5), so -+0.5 / (0.70711 + 1e-4).
  auto exp = troupe::test::small_experience({3, 3}, {2, 2}, {0.0f, 10.0f});
  rl::Grpo grpo(rl::GrpoConfig::from_options({{"samples_per_prompt", 2}, {"reward_clip", 1}}));
  grpo.compute_advantages(exp);
  const double a = 0.5 / (std::sqrt(0.5) + 1e-4);
  CHECK(exp.advantages[0][0].item<double>() == Approx(-a).margin(1e-6));
  CHECK(exp.advantages[1][0].item<double>() == Approx(a).margin(1e-6));
}

TEST_CASE("GRPO KL estimators and KL in the reward equal PyTorch", "[grpo][reference]") {
  const auto fixture = troupe::test::rl_fixture("grpo_kl.json");
  const auto& inputs = fixture.at("inputs");
  const auto new_logprobs = fixture_tensor(inputs.at("new_logprobs"));  // (B, T-1)
  std::vector<double> losses;
  for (const auto& c : fixture.at("cases")) {
    INFO("case " << c.at("config").dump());
    auto algo = rl::AlgorithmRegistry::global().create("grpo", troupe::test::fixture_options(c.at("config")));
    auto exp = troupe::test::fixture_experience(inputs);
    algo->compute_advantages(exp);
    CHECK_CLOSE(exp.advantages, fixture_tensor(c.at("advantages")), 1e-6);
    losses.push_back(algo->policy_loss(new_logprobs, exp).item<double>());
    CHECK(losses.back() == Approx(c.at("loss").get<double>()).margin(1e-6));
  }
  // The estimator matters: k1, k2 and k3 give different losses.
  REQUIRE(losses.size() == 5);
  CHECK(std::abs(losses[0] - losses[1]) > 1e-4);
  CHECK(std::abs(losses[1] - losses[2]) > 1e-4);
}

TEST_CASE("GRPO refuses bad KL options naming the algorithm and the option", "[grpo][options]") {
  auto& registry = rl::AlgorithmRegistry::global();
  CHECK(rl::GrpoConfig{}.kl_estimator == rl::KlEstimator::K3);
  CHECK_THROWS_WITH(registry.create("grpo", {{"kl_estimator", 4}}),
                    Catch::Contains("grpo") && Catch::Contains("kl_estimator") && Catch::Contains("k1, k2 or k3"));
  CHECK_THROWS_WITH(registry.create("grpo", {{"kl_in_reward", 2}}), Catch::Contains("kl_in_reward"));
  CHECK_THROWS_WITH(registry.create("grpo", {{"reward_clip", -2}}),
                    Catch::Contains("grpo") && Catch::Contains("reward_clip"));
}
