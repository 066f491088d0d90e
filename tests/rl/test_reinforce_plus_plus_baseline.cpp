/// REINFORCE++-baseline: the group-mean baseline before REINFORCE++'s KL shaping and
/// whitening, by hand and against PyTorch (OpenRLHF's "reinforce_baseline").
#include <troupe/common/error.hpp>
#include <troupe/rl/reinforce_plus_plus_baseline.hpp>

#include "algorithm_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

TEST_CASE("REINFORCE++-baseline by hand", "[reinforce++_baseline][by_hand]") {
  // One group scored 1 and 3 (mean 2), two tokens each, no KL: returns -1, -1 and 1, 1 on
  // every token. Whitened (population variance over the 4 tokens = 1) they stay so.
  for (double whiten : {0.0, 1.0}) {
    auto exp = troupe::test::small_experience({3, 3}, {2, 2}, {1.0f, 3.0f});
    auto algo = rl::AlgorithmRegistry::global().create(
        "reinforce++_baseline", {{"samples_per_prompt", 2}, {"kl_coef", 0.0}, {"whiten_advantages", whiten}});
    CHECK(algo->samples_per_prompt() == 2);
    CHECK_FALSE(algo->roles().reference);
    algo->compute_advantages(exp);
    const auto expected = torch::tensor({{-1.0f, -1.0f, 0.0f, 0.0f}, {1.0f, 1.0f, 0.0f, 0.0f}});  // (B, A)
    CHECK_CLOSE(exp.advantages, expected, 1e-6);
  }
  // Plain REINFORCE++ on the same batch keeps the raw scores as returns: 1 and 3.
  auto exp = troupe::test::small_experience({3, 3}, {2, 2}, {1.0f, 3.0f});
  rl::ReinforcePlusPlus plain(rl::ReinforcePlusPlusConfig::from_options({{"kl_coef", 0.0}, {"whiten_advantages", 0}}));
  plain.compute_advantages(exp);
  CHECK_CLOSE(exp.advantages, torch::tensor({{1.0f, 1.0f, 0.0f, 0.0f}, {3.0f, 3.0f, 0.0f, 0.0f}}), 1e-6);
}

TEST_CASE("REINFORCE++-baseline equals PyTorch (OpenRLHF formulas)", "[reinforce++_baseline][reference]") {
  const auto fixture = troupe::test::rl_fixture("reinforce_pp_baseline.json");
  const auto& inputs = fixture.at("inputs");
  const auto new_logprobs = fixture_tensor(inputs.at("new_logprobs"));  // (B, T-1)
  for (const auto& c : fixture.at("cases")) {
    INFO("case " << c.at("config").dump());
    auto algo =
        rl::AlgorithmRegistry::global().create("reinforce++_baseline", troupe::test::fixture_options(c.at("config")));
    CHECK(algo->name() == "reinforce++_baseline");
    auto exp = troupe::test::fixture_experience(inputs);
    algo->compute_advantages(exp);
    CHECK_CLOSE(exp.rewards.narrow(1, exp.start(), exp.answer_length()), fixture_tensor(c.at("rewards")), 1e-6);
    CHECK_CLOSE(exp.advantages, fixture_tensor(c.at("advantages")), 1e-6);
    CHECK(algo->policy_loss(new_logprobs, exp).item<double>() == Approx(c.at("loss").get<double>()).margin(1e-6));
  }
}

TEST_CASE("REINFORCE++-baseline refuses bad options naming the algorithm and the option",
          "[reinforce++_baseline][options]") {
  auto& registry = rl::AlgorithmRegistry::global();
  CHECK_THROWS_WITH(registry.create("reinforce++_baseline", {{"samples_per_prompt", 1}}),
                    Catch::Contains("reinforce++_baseline") && Catch::Contains("samples_per_prompt"));
  // gamma is always 1 with the baseline (as OpenRLHF), so it is not an option.
  CHECK_THROWS_WITH(registry.create("reinforce++_baseline", {{"gamma", 0.9}}),
                    Catch::Contains("reinforce++_baseline") && Catch::Contains("gamma"));
  CHECK_THROWS_WITH(registry.create("reinforce++_baseline", {{"normalize_reward", 0.5}}),
                    Catch::Contains("reinforce++_baseline") && Catch::Contains("normalize_reward"));
  CHECK(rl::ReinforcePlusPlusBaseline().config().gamma == 1.0);
  CHECK(rl::ReinforcePlusPlusBaseline().config().group_baseline);
}
