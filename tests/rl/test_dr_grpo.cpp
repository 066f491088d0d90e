/// Dr. GRPO: group-centred advantages without the std and the constant-length loss, by
/// hand and against PyTorch (Liu et al. 2025, as TRL's loss_type "dr_grpo").
#include <troupe/common/error.hpp>
#include <troupe/rl/dr_grpo.hpp>
#include <troupe/rl/grpo.hpp>

#include "algorithm_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

TEST_CASE("Dr. GRPO by hand: no std, no per-answer length", "[dr_grpo][by_hand]") {
  // One group scored 0 and 3: advantages -1.5 and 1.5 (GRPO would divide by the std
  // 2.12). Answers of 2 and 4 tokens at ratio 1, so the per-token loss is -A:
  //   Dr. GRPO, length 4:  (1.5 * 2 - 1.5 * 4) / (2 rows * 4) = -0.375
  //   GRPO's per-answer mean: (1.5 - 1.5) / 2 = 0: the long answer counts as much as the short
  auto exp = troupe::test::small_experience({3, 3}, {2, 4}, {0.0f, 3.0f});
  rl::DrGrpo dr(rl::DrGrpoConfig::from_options({{"samples_per_prompt", 2}, {"generate_max_len", 4}}));
  CHECK_FALSE(dr.roles().reference);  // no KL term by default
  dr.compute_advantages(exp);
  CHECK_CLOSE(exp.advantages, torch::tensor({{-1.5f, -1.5f, 0.0f, 0.0f}, {1.5f, 1.5f, 1.5f, 1.5f}}), 1e-6);
  CHECK(dr.policy_loss(exp.logprobs, exp).item<double>() == Approx(-0.375).margin(1e-7));

  rl::Grpo grpo(rl::GrpoConfig::from_options({{"samples_per_prompt", 2}, {"scale_rewards", 0}, {"kl_coef", 0}}));
  auto g = exp;
  grpo.compute_advantages(g);
  CHECK(grpo.policy_loss(g.logprobs, g).item<double>() == Approx(0.0).margin(1e-7));

  // A longer constant scales the loss, the same for every batch: 8 -> -0.1875.
  rl::DrGrpo dr8(rl::DrGrpoConfig::from_options({{"samples_per_prompt", 2}, {"generate_max_len", 8}}));
  CHECK(dr8.policy_loss(exp.logprobs, exp).item<double>() == Approx(-0.1875).margin(1e-7));
  // A constant shorter than the batch's answers is a misconfiguration.
  rl::DrGrpo dr3(rl::DrGrpoConfig::from_options({{"samples_per_prompt", 2}, {"generate_max_len", 3}}));
  CHECK_THROWS_WITH(dr3.policy_loss(exp.logprobs, exp), Catch::Contains("dr_grpo") && Catch::Contains("generate_max_len"));
}

TEST_CASE("Dr. GRPO equals PyTorch (paper / TRL formulas)", "[dr_grpo][reference]") {
  const auto fixture = troupe::test::rl_fixture("dr_grpo.json");
  const auto& inputs = fixture.at("inputs");
  const auto new_logprobs = fixture_tensor(inputs.at("new_logprobs"));  // (B, T-1)
  for (const auto& c : fixture.at("cases")) {
    INFO("case " << c.at("config").dump());
    auto algo = rl::AlgorithmRegistry::global().create("dr_grpo", troupe::test::fixture_options(c.at("config")));
    CHECK(algo->roles().reference == (c.at("config").at("kl_coef").get<double>() > 0));
    auto exp = troupe::test::fixture_experience(inputs);
    algo->compute_advantages(exp);
    CHECK_CLOSE(exp.advantages, fixture_tensor(c.at("advantages")), 1e-6);
    CHECK(algo->policy_loss(new_logprobs, exp).item<double>() == Approx(c.at("loss").get<double>()).margin(1e-6));
  }
}

TEST_CASE("Dr. GRPO refuses bad options naming the algorithm and the option", "[dr_grpo][options]") {
  auto& registry = rl::AlgorithmRegistry::global();
  CHECK_THROWS_WITH(registry.create("dr_grpo", {{"generate_max_len", -1}}),
                    Catch::Contains("dr_grpo") && Catch::Contains("generate_max_len"));
  CHECK_THROWS_WITH(registry.create("dr_grpo", {{"generate_max_len", 2.5}}), Catch::Contains("generate_max_len"));
  CHECK_THROWS_WITH(registry.create("dr_grpo", {{"samples_per_prompt", 1}}),
                    Catch::Contains("dr_grpo") && Catch::Contains("samples_per_prompt"));
  // Std scaling and per-answer means are what Dr. GRPO removes: not options.
  CHECK_THROWS_WITH(registry.create("dr_grpo", {{"scale_rewards", 1}}), Catch::Contains("scale_rewards"));
  CHECK_THROWS_WITH(registry.create("dr_grpo", {{"token_mean", 1}}), Catch::Contains("token_mean"));
}
