/// RLOO: leave-one-out advantages by hand and against PyTorch (Ahmadian et al. 2024, as
/// TRL's RLOOTrainer), groups cut by prompt, and its options.
#include <troupe/common/error.hpp>
#include <troupe/rl/group_advantages.hpp>
#include <troupe/rl/rloo.hpp>

#include "algorithm_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

TEST_CASE("prompt groups: consecutive rows of one prompt, at most group_size", "[rloo][groups]") {
  // Prompts a a a b b a a with groups of 2: the third a starts a group, b b is one, and the
  // last two a's are a group of their own although their prompt is the first one's.
  auto prompts = torch::tensor(std::vector<int64_t>{4, 9, 4, 9, 4, 9, 0, 7, 0, 7, 4, 9, 4, 9}).view({7, 2});
  CHECK(torch::equal(rl::prompt_groups(prompts, 2), torch::tensor(std::vector<int64_t>{0, 0, 1, 2, 2, 3, 3})));
  CHECK(torch::equal(rl::prompt_groups(prompts, 4), torch::tensor(std::vector<int64_t>{0, 0, 0, 1, 1, 2, 2})));
  CHECK(torch::equal(rl::prompt_groups(prompts, 1), torch::arange(7)));
}

TEST_CASE("RLOO advantages by hand", "[rloo][by_hand]") {
  // Group [1, 2, 6]: 1 - (2 + 6) / 2 = -3, 2 - (1 + 6) / 2 = -1.5, 6 - (1 + 2) / 2 = 4.5.
  // Group [4, 0] (a group of 3 that lost a row): 4 - 0 = 4, 0 - 4 = -4. A lone row: 0.
  const auto scores = torch::tensor({1.0f, 2.0f, 6.0f, 4.0f, 0.0f, 7.0f});
  const auto groups = torch::tensor(std::vector<int64_t>{0, 0, 0, 1, 1, 2});
  CHECK_CLOSE(rl::leave_one_out_advantages(scores, groups), torch::tensor({-3.0f, -1.5f, 4.5f, 4.0f, -4.0f, 0.0f}),
              1e-6);

  // Through the algorithm, with the sequence-level KL penalty: row 0's two actions have
  // log-ratio 0.5 each, so its reward is 1 - 0.5 * (0.5 + 0.5) = 0.5 and its advantage
  // 0.5 - (2 + 6) / 2 = -3.5; the others' baseline includes 0.5: 2 - 3.25, 6 - 1.25.
  auto exp = troupe::test::small_experience({3, 3, 3, 8, 8, 5}, {2, 4, 3, 1, 2, 2},
                                            {1.0f, 2.0f, 6.0f, 4.0f, 0.0f, 7.0f});
  exp.logprobs[0].narrow(0, 1, 2).fill_(0.5f);  // answer positions 1, 2 of row 0
  exp.logprobs[0][4] = 50.0f;                   // padding: never read
  rl::Rloo rloo(rl::RlooConfig::from_options({{"samples_per_prompt", 3}, {"kl_coef", 0.5}}));
  rloo.compute_advantages(exp);
  const auto expected = torch::tensor({-3.5f, -1.25f, 4.75f, 4.0f, -4.0f, 0.0f});  // (B,)
  CHECK_CLOSE(exp.advantages, expected.unsqueeze(1) * rl::answer_mask(exp).to(torch::kFloat), 1e-6);
}

TEST_CASE("RLOO equals PyTorch (paper / TRL formulas)", "[rloo][reference]") {
  const auto fixture = troupe::test::rl_fixture("rloo.json");
  const auto& inputs = fixture.at("inputs");
  const auto new_logprobs = fixture_tensor(inputs.at("new_logprobs"));  // (B, T-1)
  for (const auto& c : fixture.at("cases")) {
    INFO("case " << c.at("config").dump());
    auto algo = rl::AlgorithmRegistry::global().create("rloo", troupe::test::fixture_options(c.at("config")));
    CHECK(algo->samples_per_prompt() == 3);
    CHECK_FALSE(algo->roles().critic);
    auto exp = troupe::test::fixture_experience(inputs);
    algo->compute_advantages(exp);
    CHECK_CLOSE(exp.advantages, fixture_tensor(c.at("advantages")), 1e-6);
    CHECK(algo->policy_loss(new_logprobs, exp).item<double>() == Approx(c.at("loss").get<double>()).margin(1e-6));
    CHECK_THROWS_AS(algo->value_loss(new_logprobs, exp), troupe::Error);
  }
}

TEST_CASE("RLOO: the better answer's log-probs go up", "[rloo]") {
  auto exp = troupe::test::small_experience({3, 3}, {2, 2}, {0.0f, 1.0f});
  rl::Rloo rloo(rl::RlooConfig::from_options({{"samples_per_prompt", 2}, {"kl_coef", 0.0}}));
  CHECK_FALSE(rloo.roles().reference);
  rloo.compute_advantages(exp);  // advantages -1, +1
  auto logprobs = exp.logprobs.clone().requires_grad_();
  rloo.policy_loss(logprobs, exp).backward();
  // Token mean of -A * ratio over 4 tokens: d/dlp = -A / 4 at ratio 1.
  CHECK_CLOSE(logprobs.grad().narrow(1, 1, 2), torch::tensor({{0.25f, 0.25f}, {-0.25f, -0.25f}}), 1e-7);
  CHECK(logprobs.grad()[0][0].item<float>() == 0.0f);  // the prompt position
}

TEST_CASE("RLOO refuses bad options naming the algorithm and the option", "[rloo][options]") {
  auto& registry = rl::AlgorithmRegistry::global();
  CHECK_THROWS_WITH(registry.create("rloo", {{"samples_per_prompt", 1}}),
                    Catch::Contains("rloo") && Catch::Contains("samples_per_prompt"));
  CHECK_THROWS_WITH(registry.create("rloo", {{"kl_estimator", 4}}),
                    Catch::Contains("rloo") && Catch::Contains("kl_estimator"));
  CHECK_THROWS_WITH(registry.create("rloo", {{"normalize_reward", 3}}),
                    Catch::Contains("rloo") && Catch::Contains("normalize_reward"));
  CHECK_THROWS_WITH(registry.create("rloo", {{"reward_clip", -1}}),
                    Catch::Contains("rloo") && Catch::Contains("reward_clip"));
  CHECK_THROWS_WITH(registry.create("rloo", {{"cliprange", 1.5}}), Catch::Contains("rloo") && Catch::Contains("cliprange"));
  CHECK_THROWS_WITH(registry.create("rloo", {{"gamma", 0.9}}), Catch::Contains("rloo") && Catch::Contains("gamma"));
  CHECK_THROWS_WITH(registry.create("rloo", {{"whiten_advantages", 2}}), Catch::Contains("whiten_advantages"));
}
