/// REINFORCE++: per-token KL rewards, discounted returns and the batch whitening by hand
/// and against PyTorch (Hu 2025, as OpenRLHF's "reinforce" advantage estimator).
#include <troupe/common/error.hpp>
#include <troupe/rl/policy_loss.hpp>
#include <troupe/rl/reinforce_plus_plus.hpp>
#include <troupe/rl/token_returns.hpp>

#include "algorithm_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

TEST_CASE("REINFORCE++ by hand: KL rewards and discounted returns of one answer", "[reinforce++][by_hand]") {
  // One answer of 3 tokens (answer positions 0..2; position 3 is padding), log-ratios
  // 0.5, 0, 0.5, score 2, kl_coef 0.1, gamma 0.5:
  //   rewards  -0.05, 0, -0.05 + 2 = 1.95
  //   returns  G2 = 1.95, G1 = 0 + 0.5 * 1.95 = 0.975, G0 = -0.05 + 0.5 * 0.975 = 0.4375
  auto exp = troupe::test::small_experience({3}, {3}, {2.0f});
  exp.logprobs = torch::tensor({{-9.0f, -1.0f, -2.0f, -0.5f, -7.0f}});      // (1, T-1)
  exp.ref_logprobs = torch::tensor({{-3.0f, -1.5f, -2.0f, -1.0f, -1.0f}});  // log-ratio 0.5, 0, 0.5 on the answer
  rl::ReinforcePlusPlus algo(
      rl::ReinforcePlusPlusConfig::from_options({{"kl_coef", 0.1}, {"gamma", 0.5}, {"whiten_advantages", 0}}));
  CHECK(algo.samples_per_prompt() == 1);
  CHECK(algo.roles().reference);
  algo.compute_advantages(exp);
  CHECK_CLOSE(exp.rewards, torch::tensor({{0.0f, -0.05f, 0.0f, 1.95f, 0.0f}}), 1e-6);
  CHECK_CLOSE(exp.returns, torch::tensor({{0.4375f, 0.975f, 1.95f, 0.0f}}), 1e-6);
  CHECK_CLOSE(exp.advantages, exp.returns, 0.0);
}

TEST_CASE("REINFORCE++ by hand: whitening over the batch uses the population variance", "[reinforce++][by_hand]") {
  // Returns -1, -1 (row 0) and 1, 1 (row 1) over four tokens: mean 0, population variance
  // 1, so they stay as they are (the Bessel variance 4/3 would give +-0.866).
  const auto returns = torch::tensor({{-1.0f, -1.0f, 0.0f}, {1.0f, 1.0f, 7.0f}});  // (2, 3)
  const auto mask = torch::tensor({{1, 1, 0}, {1, 1, 0}});
  CHECK_CLOSE(rl::normalize_over_tokens(returns, mask), torch::tensor({{-1.0f, -1.0f, 0.0f}, {1.0f, 1.0f, 0.0f}}),
              1e-6);
  // Shift and scale do not matter: 10 + 3x whitens to the same.
  CHECK_CLOSE(rl::normalize_over_tokens(10 + 3 * returns, mask), rl::normalize_over_tokens(returns, mask), 1e-6);
  CHECK_CLOSE(rl::normalize_over_tokens(returns, torch::zeros_like(mask)), torch::zeros_like(returns), 0.0);
}

TEST_CASE("REINFORCE++ equals PyTorch (OpenRLHF formulas)", "[reinforce++][reference]") {
  const auto fixture = troupe::test::rl_fixture("reinforce_pp.json");
  const auto& inputs = fixture.at("inputs");
  const auto new_logprobs = fixture_tensor(inputs.at("new_logprobs"));  // (B, T-1)
  for (const auto& c : fixture.at("cases")) {
    INFO("case " << c.at("config").dump());
    auto algo = rl::AlgorithmRegistry::global().create("reinforce++", troupe::test::fixture_options(c.at("config")));
    CHECK(algo->name() == "reinforce++");
    CHECK_FALSE(algo->roles().critic);
    auto exp = troupe::test::fixture_experience(inputs);
    algo->compute_advantages(exp);
    CHECK_CLOSE(exp.rewards.narrow(1, exp.start(), exp.answer_length()), fixture_tensor(c.at("rewards")), 1e-6);
    CHECK_CLOSE(exp.returns * rl::answer_mask(exp), fixture_tensor(c.at("returns")), 1e-6);
    CHECK_CLOSE(exp.advantages, fixture_tensor(c.at("advantages")), 1e-6);
    CHECK(algo->policy_loss(new_logprobs, exp).item<double>() == Approx(c.at("loss").get<double>()).margin(1e-6));
  }
}

TEST_CASE("REINFORCE++ refuses bad options naming the algorithm and the option", "[reinforce++][options]") {
  auto& registry = rl::AlgorithmRegistry::global();
  CHECK_THROWS_WITH(registry.create("reinforce++", {{"gamma", 1.5}}),
                    Catch::Contains("reinforce++") && Catch::Contains("gamma"));
  CHECK_THROWS_WITH(registry.create("reinforce++", {{"kl_coef", -0.1}}),
                    Catch::Contains("reinforce++") && Catch::Contains("kl_coef"));
  CHECK_THROWS_WITH(registry.create("reinforce++", {{"samples_per_prompt", 0}}),
                    Catch::Contains("reinforce++") && Catch::Contains("samples_per_prompt"));
  CHECK_THROWS_WITH(registry.create("reinforce++", {{"kl_estimator", 0}}),
                    Catch::Contains("reinforce++") && Catch::Contains("kl_estimator"));
  CHECK_THROWS_WITH(registry.create("reinforce++", {{"lam", 0.95}}), Catch::Contains("lam"));
}
