/// ReMax: the greedy answer's reward as the baseline, by hand and against PyTorch (Li et
/// al. 2023, Algorithm 1, with the KL to the reference in the reward).
#include <troupe/common/error.hpp>
#include <troupe/rl/policy_loss.hpp>
#include <troupe/rl/remax.hpp>

#include "algorithm_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

TEST_CASE("ReMax by hand: advantage = return - the greedy answer's reward", "[remax][by_hand]") {
  // Two prompts, one sampled answer each (3 and 2 tokens, answer positions 0..3):
  //   row 0: score 2, greedy 0.5, log-ratios 0.5, 0, 0.5, kl_coef 0.1
  //          rewards -0.05, 0, 1.95; returns 1.9, 1.95, 1.95; advantages 1.4, 1.45, 1.45
  //   row 1: score -1, greedy -1, log-ratios 0: advantages 0 (the greedy answer was as good)
  auto exp = troupe::test::small_experience({3, 4}, {3, 2}, {2.0f, -1.0f});
  exp.logprobs = torch::tensor({{-9.0f, -1.0f, -2.0f, -0.5f, -7.0f}, {-1.0f, -1.0f, -1.0f, -1.0f, -1.0f}});  // (B, T-1)
  exp.ref_logprobs = torch::tensor({{-3.0f, -1.5f, -2.0f, -1.0f, -1.0f}, {-1.0f, -1.0f, -1.0f, -1.0f, -1.0f}});
  exp.baseline_reward = torch::tensor({0.5f, -1.0f});  // (B,)
  rl::Remax algo(rl::RemaxConfig::from_options({{"kl_coef", 0.1}}));
  CHECK(algo.needs_greedy_baseline());
  CHECK(algo.samples_per_prompt() == 1);
  CHECK(algo.roles().reference);
  CHECK_FALSE(algo.roles().critic);
  algo.compute_advantages(exp);
  CHECK_CLOSE(exp.rewards, torch::tensor({{0.0f, -0.05f, 0.0f, 1.95f, 0.0f}, {0.0f, 0.0f, -1.0f, 0.0f, 0.0f}}), 1e-6);
  CHECK_CLOSE(exp.returns * rl::answer_mask(exp), torch::tensor({{1.9f, 1.95f, 1.95f, 0.0f}, {-1.0f, -1.0f, 0.0f, 0.0f}}),
              1e-6);
  CHECK_CLOSE(exp.advantages, torch::tensor({{1.4f, 1.45f, 1.45f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}}), 1e-6);
  // Without the KL, no reference is needed.
  CHECK_FALSE(rl::Remax(rl::RemaxConfig::from_options({{"kl_coef", 0.0}})).roles().reference);
}

TEST_CASE("ReMax equals PyTorch (the paper's estimator)", "[remax][reference]") {
  for (const char* file : {"remax.json", "remax_two_samples.json"}) {
    const auto fixture = troupe::test::rl_fixture(file);
    const auto& inputs = fixture.at("inputs");
    const auto new_logprobs = fixture_tensor(inputs.at("new_logprobs"));  // (B, T-1)
    for (const auto& c : fixture.at("cases")) {
      INFO(file << " case " << c.at("config").dump());
      auto algo = rl::AlgorithmRegistry::global().create("remax", troupe::test::fixture_options(c.at("config")));
      CHECK(algo->name() == "remax");
      CHECK(algo->needs_greedy_baseline());
      auto exp = troupe::test::fixture_experience(inputs);
      exp.baseline_reward = fixture_tensor(inputs.at("baseline_reward"));  // (B,)
      algo->compute_advantages(exp);
      CHECK_CLOSE(exp.rewards.narrow(1, exp.start(), exp.answer_length()), fixture_tensor(c.at("rewards")), 1e-6);
      CHECK_CLOSE(exp.returns * rl::answer_mask(exp), fixture_tensor(c.at("returns")), 1e-6);
      CHECK_CLOSE(exp.advantages, fixture_tensor(c.at("advantages")), 1e-6);
      CHECK(algo->policy_loss(new_logprobs, exp).item<double>() == Approx(c.at("loss").get<double>()).margin(1e-6));
    }
  }
}

TEST_CASE("ReMax needs the greedy baseline and refuses bad options by name", "[remax][options]") {
  auto exp = troupe::test::small_experience({3}, {2}, {1.0f});
  rl::Remax algo;
  CHECK_THROWS_WITH(algo.compute_advantages(exp), Catch::Contains("remax") && Catch::Contains("baseline_reward"));
  auto& registry = rl::AlgorithmRegistry::global();
  CHECK_THROWS_WITH(registry.create("remax", {{"samples_per_prompt", 0}}),
                    Catch::Contains("remax") && Catch::Contains("samples_per_prompt"));
  CHECK_THROWS_WITH(registry.create("remax", {{"kl_coef", -1}}), Catch::Contains("remax") && Catch::Contains("kl_coef"));
  CHECK_THROWS_WITH(registry.create("remax", {{"kl_estimator", 4}}),
                    Catch::Contains("remax") && Catch::Contains("kl_estimator"));
  CHECK_THROWS_WITH(registry.create("remax", {{"gamma", 0.9}}), Catch::Contains("gamma"));
  // Every other built-in algorithm leaves the greedy generation off.
  for (const std::string name : {"ppo", "grpo", "dr_grpo", "rloo", "reinforce++", "reinforce++_baseline", "remax"}) {
    INFO(name);
    CHECK(registry.create(name)->needs_greedy_baseline() == (name == "remax"));
  }
}
