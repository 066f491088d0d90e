/// GRPO: group-normalised advantages by their definition and against PyTorch, and the
/// policy loss with the k3 KL term.
#include <cmath>

#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/group_advantages.hpp>
#include <troupe/rl/grpo.hpp>

#include "rl_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

TEST_CASE("GRPO advantages by hand", "[grpo][by_hand]") {
  // Groups of 3: [0, 0, 3] has mean 1 and std sqrt(((-1)^2 + (-1)^2 + 2^2) / 2) = sqrt(3);
  // [4, 4, 4] has std 0, so its advantages are 0.
  const auto scores = torch::tensor({0.0f, 0.0f, 3.0f, 4.0f, 4.0f, 4.0f});
  const double s3 = std::sqrt(3.0) + 1e-4;
  const auto expected = torch::tensor({-1 / s3, -1 / s3, 2 / s3, 0.0, 0.0, 0.0}).to(torch::kFloat);
  CHECK_CLOSE(rl::group_normalized_advantages(scores, 3, 1e-4), expected, 1e-6);
  // Unscaled (Dr. GRPO): only the group mean is removed.
  CHECK_CLOSE(rl::group_normalized_advantages(scores, 3, 1e-4, false),
              torch::tensor({-1.0f, -1.0f, 2.0f, 0.0f, 0.0f, 0.0f}), 1e-6);
}

TEST_CASE("GRPO advantages equal their definition and PyTorch", "[grpo][reference]") {
  const auto fixture = troupe::test::rl_fixture("grpo.json");
  const auto scores = fixture_tensor(fixture.at("scores"));  // (B,)
  const int64_t n = fixture.at("group_size");
  const double eps = fixture.at("eps");
  const auto ours = rl::group_normalized_advantages(scores, n, eps);  // (B,)
  CHECK_CLOSE(ours, fixture_tensor(fixture.at("advantages")), 1e-6);

  // The definition, one group at a time in double: (s - mean) / (sample std + eps).
  auto s = scores.to(torch::kDouble);
  for (int64_t g = 0; g < scores.size(0) / n; ++g) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mean += s[g * n + i].item<double>() / n;
    for (int64_t i = 0; i < n; ++i) var += std::pow(s[g * n + i].item<double>() - mean, 2) / (n - 1);
    for (int64_t i = 0; i < n; ++i)
      CHECK(ours[g * n + i].item<double>() ==
            Approx((s[g * n + i].item<double>() - mean) / (std::sqrt(var) + eps)).margin(1e-6));
  }
}

TEST_CASE("GRPO policy loss (clipped surrogate + k3 KL) equals PyTorch", "[grpo][reference]") {
  const auto fixture = troupe::test::rl_fixture("grpo.json");
  const auto mask = fixture_tensor(fixture.at("attention_mask"));  // (B, T)
  const int64_t P = fixture.at("prompt_length");
  auto exp = rl::Experience::from_generation(torch::ones({mask.size(0), P}, torch::kLong),
                                             torch::ones_like(mask), mask);
  exp.logprobs = fixture_tensor(fixture.at("logprobs"));
  exp.ref_logprobs = fixture_tensor(fixture.at("ref_logprobs"));
  exp.reward_score = fixture_tensor(fixture.at("scores"));
  const auto new_logprobs = fixture_tensor(fixture.at("new_logprobs"));

  for (bool token_mean : {false, true}) {
    rl::AlgorithmOptions options{{"samples_per_prompt", fixture.at("group_size").get<double>()},
                                 {"eps", fixture.at("eps").get<double>()},
                                 {"cliprange", fixture.at("cliprange").get<double>()},
                                 {"kl_coef", fixture.at("kl_coef").get<double>()},
                                 {"token_mean", token_mean ? 1.0 : 0.0}};
    auto grpo = rl::AlgorithmRegistry::global().create("grpo", options);
    CHECK(grpo->samples_per_prompt() == 4);
    CHECK_FALSE(grpo->roles().critic);
    CHECK(grpo->roles().reference);
    auto e = exp;
    grpo->compute_advantages(e);
    CHECK_FALSE(e.returns.defined());
    // Every action token of an answer carries the answer's advantage.
    const auto answer_mask = e.action_mask.narrow(1, e.start(), e.answer_length());  // (B, A)
    CHECK_CLOSE(e.advantages, fixture_tensor(fixture.at("advantages")).unsqueeze(1) * answer_mask, 1e-6);
    const double expected = fixture.at(token_mean ? "loss_token_mean" : "loss_sequence_mean");
    CHECK(grpo->policy_loss(new_logprobs, e).item<double>() == Approx(expected).margin(1e-6));
    CHECK_THROWS_AS(grpo->value_loss(new_logprobs, e), troupe::Error);
  }
}

TEST_CASE("GRPO groups rows by prompt, so a group that lost answers still counts", "[grpo]") {
  // Rows of prompts a a a | b b | c (groups of 3 that lost one and two answers to the
  // short-answer filter). Group a [0, 0, 3]: mean 1, std sqrt(3); b [1, 5]: mean 3, std
  // sqrt(8); c alone: 0. Cutting by row count would have mixed b into a's group.
  auto prompts = torch::tensor(std::vector<int64_t>{1, 1, 1, 2, 2, 3}).unsqueeze(1).repeat({1, 2});  // (6, 2)
  auto exp = rl::Experience::from_generation(prompts, torch::cat({prompts, torch::ones({6, 3}, torch::kLong)}, 1),
                                             torch::ones({6, 5}, torch::kLong));
  exp.reward_score = torch::tensor({0.0f, 0.0f, 3.0f, 1.0f, 5.0f, 9.0f});
  rl::Grpo grpo(rl::GrpoConfig::from_options({{"samples_per_prompt", 3}}));
  grpo.compute_advantages(exp);
  const double s3 = std::sqrt(3.0) + 1e-4, s8 = std::sqrt(8.0) + 1e-4;
  const auto expected = torch::tensor({-1 / s3, -1 / s3, 2 / s3, -2 / s8, 2 / s8, 0.0}).to(torch::kFloat);  // (B,)
  CHECK_CLOSE(exp.advantages.select(1, 0), expected, 1e-6);
  CHECK_THROWS_AS(rl::GrpoConfig::from_options({{"samples_per_prompt", 1}}), troupe::Error);
  CHECK_THROWS_AS(rl::GrpoConfig::from_options({{"samples_per_prompt", 2.5}}), troupe::Error);
}
