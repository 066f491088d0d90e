/// The algorithm and reward-function registries, and an app's own algorithm.
#include <troupe/common/error.hpp>
#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/masked_ops.hpp>
#include <troupe/rl/reward_function.hpp>

#include "rl_fixtures.hpp"

using namespace troupe;

namespace {

/// REINFORCE with a batch-mean baseline: what an app might register as its own.
class MeanBaselineReinforce : public rl::Algorithm {
 public:
  std::string name() const override { return "reinforce"; }
  rl::AlgorithmRoles roles() const override { return {false, false, rl::RewardSource::Function}; }
  void compute_advantages(rl::Experience& exp) override {
    const auto centred = exp.reward_score - exp.reward_score.mean();                    // (B,)
    const auto mask = exp.action_mask.narrow(1, exp.start(), exp.answer_length());      // (B, A)
    exp.advantages = centred.unsqueeze(1) * mask.to(torch::kFloat);                     // (B, A)
  }
  torch::Tensor policy_loss(const torch::Tensor& logprobs, const rl::Experience& exp) const override {
    const auto lp = logprobs.narrow(1, exp.start(), exp.answer_length());  // (B, A)
    return rl::masked_mean(-exp.advantages * lp, exp.action_mask.narrow(1, exp.start(), exp.answer_length()));
  }
};

}  // namespace

TEST_CASE("the global registry holds PPO and GRPO", "[registry]") {
  auto& registry = rl::AlgorithmRegistry::global();
  CHECK(registry.contains("ppo"));
  CHECK(registry.contains("grpo"));
  CHECK(registry.create("ppo")->name() == "ppo");
  CHECK(registry.create("grpo")->name() == "grpo");
  CHECK_THROWS_WITH(registry.create("dpo"), Catch::Contains("dpo") && Catch::Contains("grpo, ppo"));
  CHECK_THROWS_WITH(registry.create("ppo", {{"kl_clt", 0.2}}), Catch::Contains("kl_clt"));
  CHECK_THROWS_WITH(registry.create("grpo", {{"cliprange_value", 0.2}}), Catch::Contains("cliprange_value"));
  CHECK_THROWS_AS(registry.register_algorithm("ppo", [](const rl::AlgorithmOptions&) {
                    return std::make_unique<MeanBaselineReinforce>();
                  }),
                  troupe::Error);
}

TEST_CASE("every built-in algorithm is registered by name and refuses unknown options", "[registry]") {
  auto& registry = rl::AlgorithmRegistry::global();
  for (const std::string name : {"ppo", "grpo", "dr_grpo", "rloo", "reinforce++", "reinforce++_baseline", "remax"}) {
    INFO(name);
    REQUIRE(registry.contains(name));
    auto algo = registry.create(name);
    CHECK(algo->name() == name);
    CHECK(algo->roles().critic == (name == "ppo"));
    CHECK(algo->samples_per_prompt() >= 1);
    CHECK_THROWS_WITH(registry.create(name, {{"no_such_option", 1}}),
                      Catch::Contains(name) && Catch::Contains("no_such_option"));
  }
  CHECK_THROWS_WITH(registry.create("vapo"), Catch::Contains("reinforce++_baseline") && Catch::Contains("remax"));
}

TEST_CASE("an app registers its own algorithm and trains with it", "[registry]") {
  rl::AlgorithmRegistry registry;
  rl::register_builtin_algorithms(registry);
  registry.register_algorithm("reinforce", [](const rl::AlgorithmOptions&) {
    return std::make_unique<MeanBaselineReinforce>();
  });
  CHECK(registry.names() ==
        std::vector<std::string>{"dr_grpo", "grpo", "ppo", "reinforce", "reinforce++", "reinforce++_baseline", "remax",
                                 "rloo"});
  auto algo = registry.create("reinforce");
  CHECK(algo->roles().reward == rl::RewardSource::Function);
  CHECK_THROWS_AS(algo->value_loss(torch::zeros({1, 1}), rl::Experience()), troupe::Error);

  // Two rows, P = 1, T = 3: scores 1 and 3, so advantages -1 and +1 on both actions.
  auto exp = rl::Experience::from_generation(torch::ones({2, 1}, torch::kLong), torch::ones({2, 3}, torch::kLong),
                                             torch::ones({2, 3}, torch::kLong));
  exp.reward_score = torch::tensor({1.0f, 3.0f});
  algo->compute_advantages(exp);
  auto logprobs = torch::full({2, 2}, -1.0f).requires_grad_();  // (B, T-1)
  algo->policy_loss(logprobs, exp).backward();
  // d/dlp of mean(-A * lp) = -A / 4: the better answer's log-probs are pushed up.
  CHECK_CLOSE(logprobs.grad(), torch::tensor({{0.25f, 0.25f}, {-0.25f, -0.25f}}), 1e-7);
}

TEST_CASE("reward functions are registered and called by name", "[registry][reward]") {
  rl::RewardFunctionRegistry registry;
  registry.register_reward_function("length", [](const std::string&, const std::string& response) {
    return static_cast<double>(response.size());
  });
  registry.register_reward_function("broken", [](const std::string&, const std::string&) {
    return std::numeric_limits<double>::quiet_NaN();
  });
  CHECK(registry.names() == std::vector<std::string>{"broken", "length"});
  auto length = registry.create("length");
  CHECK(length->score("q", "four") == 4.0);
  CHECK(torch::equal(length->score_batch({"a", "b"}, {"xy", ""}), torch::tensor({2.0f, 0.0f})));
  CHECK_THROWS_WITH(registry.create("broken")->score_batch({"a", "b"}, {"ok", "bad"}), Catch::Contains("row 0"));
  CHECK_THROWS_AS(length->score_batch({"a"}, {}), troupe::Error);
  CHECK_THROWS_WITH(registry.create("gold"), Catch::Contains("broken, length"));
  CHECK_THROWS_AS(registry.register_reward_function("length", [](const std::string&, const std::string&) { return 0.0; }),
                  troupe::Error);
  CHECK(&rl::RewardFunctionRegistry::global() == &rl::RewardFunctionRegistry::global());
}

namespace {

/// Scores a whole batch at once (as a remote scorer does), counting its calls; `drop`
/// leaves the last score out.
class BatchScorer : public rl::RewardFunction {
 public:
  explicit BatchScorer(bool drop = false, double last = 1.0) : drop_(drop), last_(last) {}
  double score(const std::string&, const std::string&) const override { throw troupe::Error("per row: not expected"); }
  mutable int calls = 0;

 protected:
  std::vector<double> score_rows(const std::vector<std::string>&, const std::vector<std::string>& responses) const override {
    ++calls;
    std::vector<double> scores(responses.size(), 0.5);
    if (!scores.empty()) scores.back() = last_;
    if (drop_) scores.pop_back();
    return scores;
  }

 private:
  bool drop_;
  double last_;
};

}  // namespace

TEST_CASE("a reward function may score a batch at once; score_batch still checks what comes back", "[registry][reward]") {
  BatchScorer batch;
  CHECK(torch::equal(batch.score_batch({"a", "b", "c"}, {"x", "y", "z"}), torch::tensor({0.5f, 0.5f, 1.0f})));
  CHECK(batch.calls == 1);
  CHECK_THROWS_WITH(BatchScorer(true).score_batch({"a", "b"}, {"x", "y"}),
                    Catch::Contains("returned 1 scores for 2 rows"));
  CHECK_THROWS_WITH(BatchScorer(false, std::numeric_limits<double>::infinity()).score_batch({"a", "b"}, {"x", "yy"}),
                    Catch::Contains("row 1") && Catch::Contains("yy"));
}
