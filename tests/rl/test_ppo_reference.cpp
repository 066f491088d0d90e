/// PPO's reward shaping, GAE and both losses against tests/reference/make_rl_fixtures.py
/// (a PyTorch implementation of REFERENCE.md following DeepSpeed-Chat's ppo_trainer.py).
#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/answer_filter.hpp>
#include <troupe/rl/experience.hpp>
#include <troupe/rl/ppo.hpp>
#include <troupe/rl/reward_shaping.hpp>

#include "rl_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

namespace {

constexpr double kTol = 1e-6;  // fp32 against fp32

rl::Experience fixture_experience(const nlohmann::json& in) {
  auto exp = rl::Experience::from_generation(fixture_tensor(in.at("prompts")), fixture_tensor(in.at("sequences")),
                                             fixture_tensor(in.at("attention_mask")));
  exp.logprobs = fixture_tensor(in.at("logprobs"));          // (B, T-1)
  exp.ref_logprobs = fixture_tensor(in.at("ref_logprobs"));  // (B, T-1)
  exp.values = fixture_tensor(in.at("values"));              // (B, T-1)
  exp.reward_score = fixture_tensor(in.at("reward_score"));  // (B,)
  exp.validate();
  return exp;
}

}  // namespace

TEST_CASE("PPO rewards, GAE and losses equal the PyTorch reference", "[ppo][reference]") {
  const auto fixture = troupe::test::rl_fixture("ppo.json");
  const auto& in = fixture.at("inputs");
  const auto new_logprobs = fixture_tensor(in.at("new_logprobs"));  // (B, T-1)
  const auto new_values = fixture_tensor(in.at("new_values"));      // (B, T-1)

  for (const auto& expected : fixture.at("cases")) {
    rl::AlgorithmOptions options;
    for (const auto& [key, value] : expected.at("config").items()) options.set(key, value.get<double>());
    INFO("config " << expected.at("config").dump());
    auto ppo = rl::AlgorithmRegistry::global().create("ppo", options);

    auto exp = fixture_experience(in);
    CHECK(torch::equal(rl::answer_ends(exp.action_mask, exp.start()), fixture_tensor(expected.at("ends"))));
    ppo->compute_advantages(exp);
    CHECK_CLOSE(exp.rewards, fixture_tensor(expected.at("rewards")), kTol);
    CHECK_CLOSE(exp.values, fixture_tensor(expected.at("old_values")), kTol);
    CHECK_CLOSE(exp.advantages, fixture_tensor(expected.at("advantages")), kTol);
    CHECK_CLOSE(exp.returns, fixture_tensor(expected.at("returns")), kTol);

    const double actor_loss = ppo->policy_loss(new_logprobs, exp).item<double>();
    const double critic_loss = ppo->value_loss(new_values, exp).item<double>();
    CHECK(actor_loss == Approx(expected.at("actor_loss").get<double>()).margin(kTol));
    CHECK(critic_loss == Approx(expected.at("critic_loss").get<double>()).margin(kTol));
  }
}

TEST_CASE("PPO losses do not depend on padding's log-probs or values", "[ppo]") {
  const auto fixture = troupe::test::rl_fixture("ppo.json");
  const auto& in = fixture.at("inputs");
  rl::Ppo ppo;
  auto exp = fixture_experience(in);
  ppo.compute_advantages(exp);
  auto new_logprobs = fixture_tensor(in.at("new_logprobs"));  // (B, T-1)
  auto new_values = fixture_tensor(in.at("new_values"));      // (B, T-1)
  const double actor = ppo.policy_loss(new_logprobs, exp).item<double>();
  const double critic = ppo.value_loss(new_values, exp).item<double>();

  // Garbage (even inf) off the action mask changes nothing.
  const auto off = exp.action_mask.eq(0);  // (B, T-1)
  new_logprobs.masked_fill_(off, 50.0);
  new_values.masked_fill_(off, std::numeric_limits<float>::infinity());
  CHECK(ppo.policy_loss(new_logprobs, exp).item<double>() == Approx(actor).margin(1e-7));
  CHECK(ppo.value_loss(new_values, exp).item<double>() == Approx(critic).margin(1e-7));
}

TEST_CASE("PPO drops answers with at most one token before making experience", "[ppo]") {
  const auto fixture = troupe::test::rl_fixture("ppo.json");
  auto exp = fixture_experience(fixture.at("inputs"));
  // Rows: answers of 7, 4, 2 and 1 tokens (the last is EOS alone).
  CHECK(torch::equal(rl::long_answer_rows(exp.attention_mask, exp.prompt_length()), torch::tensor({0, 1, 2}, torch::kLong)));
  const auto kept = rl::drop_short_answers(exp);
  REQUIRE(kept.batch_size() == 3);
  CHECK(torch::equal(kept.sequences, exp.sequences.narrow(0, 0, 3)));
  CHECK(torch::equal(kept.logprobs, exp.logprobs.narrow(0, 0, 3)));
}

TEST_CASE("PPO constants default to REFERENCE.md and reject bad overrides", "[ppo]") {
  const rl::PpoConfig defaults;
  CHECK(defaults.kl_ctl == 0.1);
  CHECK(defaults.clip_reward_value == 5.0);
  CHECK(defaults.cliprange == 0.2);
  CHECK(defaults.cliprange_value == 0.2);
  CHECK(defaults.gamma == 1.0);
  CHECK(defaults.lam == 0.95);
  const auto custom = rl::PpoConfig::from_options({{"lam", 0.9}, {"kl_ctl", 0.02}});
  CHECK(custom.lam == 0.9);
  CHECK(custom.kl_ctl == 0.02);
  CHECK(custom.gamma == 1.0);
  CHECK_THROWS_AS(rl::PpoConfig::from_options({{"gamma", 1.5}}), troupe::Error);
  CHECK_THROWS_AS(rl::PpoConfig::from_options({{"cliprange", -0.1}}), troupe::Error);

  rl::Ppo ppo;
  CHECK(ppo.roles().critic);
  CHECK(ppo.roles().reference);
  CHECK_FALSE(rl::Ppo(rl::PpoConfig::from_options({{"kl_ctl", 0.0}})).roles().reference);
}

TEST_CASE("PPO names what an experience lacks", "[ppo]") {
  const auto fixture = troupe::test::rl_fixture("ppo.json");
  auto exp = fixture_experience(fixture.at("inputs"));
  exp.values = torch::Tensor();
  rl::Ppo ppo;
  CHECK_THROWS_WITH(ppo.compute_advantages(exp), Catch::Contains("values"));
}
