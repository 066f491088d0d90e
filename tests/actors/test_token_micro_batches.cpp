/// Step 3's token-budget micro-batches (--max_tokens_per_microbatch): for every built-in
/// algorithm, and for the critic's value loss, one PPO minibatch run in 3 micro-batches
/// accumulates the gradient the minibatch gives in one pass, and reports the same
/// metrics; an algorithm that does not declare support is refused by name.
#include <future>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/actors/experience_batch.hpp>
#include <troupe/actors/step3_plan.hpp>
#include <troupe/common/error.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/micro_batches.hpp>
#include <troupe/transport/c10d_communicator.hpp>
#include "critic_role.hpp"
#include "policy_role.hpp"

#include "../models/model_fixtures.hpp"
#include "step3_world.hpp"
#include "../rl/varied_rollouts.hpp"

using namespace troupe;

namespace {

/// 3 micro-batches of the varied rollouts (rows by length: 0 3 5 2 | 7 1 6 | 4).
constexpr int64_t kBudget = 40;

/// The tiny llama every policy starts from (the same weights on every call).
models::CausalLM fresh_policy() {
  torch::manual_seed(2);
  return models::make_causal_lm(test::tiny_config("llama"));
}

models::CausalLM fresh_critic() {
  torch::manual_seed(3);
  auto critic = models::make_causal_lm(test::tiny_config("llama"));
  critic->add_value_head();
  return critic;
}

/// The varied rollouts as `algorithm` trains on them: sampled by a policy a little apart
/// from the one that trains (so ratios clip), scored by a reference a little apart too,
/// with the algorithm's advantages.
rl::Experience experience_for(rl::Algorithm& algorithm) {
  auto exp = test::varied_rollouts();
  auto policy = fresh_policy();
  {
    torch::NoGradGuard no_grad;
    policy->eval();
    const auto logprobs = engine::sequence_logprobs(*policy, exp.sequences, exp.attention_mask);  // (B, T-1)
    torch::manual_seed(7);
    exp.logprobs = logprobs + 0.2 * torch::randn_like(logprobs);
    exp.ref_logprobs = logprobs + 0.2 * torch::randn_like(logprobs);
  }
  algorithm.compute_advantages(exp);
  return exp;
}

/// What one train() call on the whole experience as one minibatch did: the gradient the
/// optimizer stepped on (captured where a data-parallel rank would average it) and the metrics.
struct OneStep {
  std::vector<torch::Tensor> gradient;
  std::map<std::string, double> metrics;
};

actors::PpoTrainingOptions one_minibatch(const rl::Experience& exp, int64_t max_tokens) {
  actors::PpoTrainingOptions ppo;
  ppo.minibatch_size = exp.batch_size();
  ppo.max_tokens_per_microbatch = max_tokens;
  return ppo;
}

template <class Role>
OneStep train_once(Role& role, engine::TrainEngine& trainer, const rl::Experience& exp) {
  OneStep result;
  trainer.set_gradient_sync([&](const std::vector<torch::Tensor>& parameters) {
    for (const auto& p : parameters)
      result.gradient.push_back(p.grad().defined() ? p.grad().detach().clone() : torch::zeros_like(p));
  });
  result.metrics = role.train({actors::to_tensor_batch(exp)}, 0).values;
  return result;
}

OneStep policy_step(const std::shared_ptr<const rl::Algorithm>& algorithm, const rl::Experience& exp,
                    int64_t max_tokens) {
  auto hybrid = std::make_shared<engine::HybridEngine>(fresh_policy());
  actors::PolicyRole policy(hybrid, engine::TrainOptions{}, models::GenerationOptions{}, algorithm,
                            one_minibatch(exp, max_tokens), {});
  return train_once(policy, policy.trainer(), exp);
}

OneStep critic_step(const std::shared_ptr<const rl::Algorithm>& algorithm, const rl::Experience& exp,
                    int64_t max_tokens) {
  actors::CriticRole critic(fresh_critic(), engine::TrainOptions{}, algorithm, one_minibatch(exp, max_tokens), {});
  return train_once(critic, critic.trainer(), exp);
}

/// The whole gradient within 1e-5 of the plain one, relative to its size.
void check_same_gradient(const OneStep& micro, const OneStep& plain) {
  REQUIRE(plain.gradient.size() == micro.gradient.size());
  REQUIRE_FALSE(plain.gradient.empty());
  auto flat = [](const std::vector<torch::Tensor>& parts) {
    std::vector<torch::Tensor> flat_parts;
    for (const auto& part : parts) flat_parts.push_back(part.to(torch::kDouble).flatten());
    return torch::cat(flat_parts);  // (parameters,)
  };
  const auto a = flat(micro.gradient), b = flat(plain.gradient);
  const double scale = b.norm().item<double>();
  REQUIRE(scale > 0);
  CHECK((a - b).norm().item<double>() <= 1e-5 * scale);
  CHECK((a - b).abs().max().item<double>() <= 1e-5 * b.abs().max().item<double>());
}

void check_same_metrics(const OneStep& micro, const OneStep& plain, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    INFO(name);
    REQUIRE(plain.metrics.count(name));
    REQUIRE(micro.metrics.count(name));
    CHECK(micro.metrics.at(name) == Approx(plain.metrics.at(name)).epsilon(1e-5).margin(1e-7));
  }
}

}  // namespace

TEST_CASE("step 3: --max_tokens_per_microbatch accumulates every algorithm's minibatch gradient over its micro-batches",
          "[actors][step3][micro_batches]") {
  const std::vector<std::pair<std::string, rl::AlgorithmOptions>> cases = {
      {"ppo", {}},
      {"grpo", {}},
      {"grpo", {{"token_mean", 1}}},
      {"dr_grpo", {}},
      {"dr_grpo", {{"generate_max_len", 12}}},
      {"rloo", {}},
      {"rloo", {{"token_mean", 0}}},
      {"reinforce++", {}},
      {"reinforce++_baseline", {}},
      {"remax", {}},
      {"remax", {{"token_mean", 0}}},
  };
  for (const auto& [name, options] : cases) {
    std::string settings;
    for (const auto& [key, value] : options.values()) settings += " " + key + "=" + std::to_string(value);
    INFO(name << settings);
    std::shared_ptr<rl::Algorithm> algorithm = rl::AlgorithmRegistry::global().create(name, options);
    const auto exp = experience_for(*algorithm);
    const auto parts = rl::token_budget_micro_batches(exp, kBudget);
    REQUIRE(parts.size() == 3);
    // Tokens are shared unevenly over the micro-batches: weighting each by its rows would be wrong.
    auto own_tokens = [](rl::Experience part) {
      part.minibatch_totals.reset();
      return part.totals().action_tokens;
    };
    const auto& first = parts.front();
    CHECK(own_tokens(first) * first.minibatch_totals->rows != first.batch_size() * first.minibatch_totals->action_tokens);

    const auto plain = policy_step(algorithm, exp, 0);
    const auto micro = policy_step(algorithm, exp, kBudget);
    check_same_gradient(micro, plain);
    check_same_metrics(micro, plain, {"actor_loss", "actor_approx_kl", "actor_approx_kl_first", "actor_grad_norm"});
    CHECK(plain.metrics.at("actor_approx_kl") > 0);
    CHECK(micro.metrics.at("actor_micro_batches") == 3);
    CHECK_FALSE(plain.metrics.count("actor_micro_batches"));
  }
}

TEST_CASE("step 3: --max_tokens_per_microbatch accumulates the critic's value-loss gradient over its micro-batches",
          "[actors][step3][micro_batches]") {
  std::shared_ptr<rl::Algorithm> ppo = rl::AlgorithmRegistry::global().create("ppo");
  const auto exp = experience_for(*ppo);
  const auto plain = critic_step(ppo, exp, 0);
  const auto micro = critic_step(ppo, exp, kBudget);
  check_same_gradient(micro, plain);
  check_same_metrics(micro, plain, {"critic_loss", "critic_grad_norm"});
  CHECK(micro.metrics.at("critic_micro_batches") == 3);
  // A budget below every row: each row its own micro-batch.
  const auto single_rows = critic_step(ppo, exp, 1);
  check_same_gradient(single_rows, plain);
  CHECK(single_rows.metrics.at("critic_micro_batches") == exp.batch_size());
}

TEST_CASE("step 3: data-parallel critic ranks with --max_tokens_per_microbatch step as they do in one pass, "
          "ZeRO stage 3 included",
          "[actors][step3][micro_batches][dp]") {
  if (!transport::gloo_available()) {
    WARN("this build has no c10d Gloo");
    return;
  }
  const int stage = GENERATE(0, 3);
  INFO("ZeRO stage " << stage);
  std::shared_ptr<rl::Algorithm> ppo = rl::AlgorithmRegistry::global().create("ppo");
  const auto exp = experience_for(*ppo);
  // Rank 0 trains on rows 0-3, rank 1 on rows 4-7. A budget of 12 tokens makes rank 0
  // run 3 passes and rank 1 run 4 ({0 3} {2} {1} against {5} {7} {6} {4}), so rank 0
  // joins the fourth with a zero loss: under ZeRO stage 3 every pass gathers the layers.
  constexpr int64_t kSmallBudget = 12;
  CHECK(rl::token_budget_micro_batches(exp.slice(0, 4), kSmallBudget).size() == 3);
  CHECK(rl::token_budget_micro_batches(exp.slice(4, 8), kSmallBudget).size() == 4);

  // One step on both ranks: the weights after it (whole, gathered under ZeRO stage 3) and the metrics.
  auto train_ranks = [&](int64_t max_tokens) {
    // Made here, not on the ranks' threads: the seeded initialisation reads the one global generator.
    std::vector<models::CausalLM> models{fresh_critic(), fresh_critic()};
    actors::Rendezvous rendezvous;
    auto run_rank = [&](int rank) {
      auto group = std::make_shared<actors::DataParallel>("127.0.0.1", rendezvous.port(), rank, 2, "critic",
                                                          std::chrono::minutes(1), actors::Collectives::kGloo);
      group->set_zero_stage(stage);
      engine::TrainOptions train;
      train.optimizer.learning_rate = 1e-2;
      train.optimizer.eps = 1.0;  // Adam's step follows the gradient's size, not only its sign
      actors::CriticRole critic(models[static_cast<size_t>(rank)], train, ppo, one_minibatch(exp.slice(0, 4), max_tokens), {}, group);
      const auto metrics = critic.train({actors::to_tensor_batch(exp.slice(4 * rank, 4 * rank + 4))}, 0).values;
      std::optional<engine::Zero3Partition::FullParameters> whole;
      if (auto* zero3 = critic.trainer().zero3()) whole.emplace(zero3->gather_full_parameters());
      std::map<std::string, torch::Tensor> weights;
      for (const auto& item : critic.trainer().model()->named_parameters())
        weights[item.key()] = item.value().detach().clone();
      return std::make_pair(weights, metrics);
    };
    auto other = std::async(std::launch::async, run_rank, 1);
    auto first = run_rank(0);
    return std::make_pair(first, other.get());
  };
  const auto plain = train_ranks(0);
  const auto micro = train_ranks(kSmallBudget);
  for (const auto* ranks : {&plain, &micro}) {
    for (const auto& [name, value] : ranks->first.first) CHECK(torch::equal(value, ranks->second.first.at(name)));
  }
  for (const auto& [name, value] : plain.first.first) {
    INFO(name);
    CHECK(torch::allclose(micro.first.first.at(name), value, 1e-5, 1e-7));
  }
  const auto& plain_metrics = plain.first.second;
  const auto& micro_metrics = micro.first.second;
  CHECK(micro_metrics.at("critic_grad_norm") == Approx(plain_metrics.at("critic_grad_norm")).epsilon(1e-5));
  CHECK(micro_metrics.at("critic_loss") == Approx(plain_metrics.at("critic_loss")).epsilon(1e-5));
  CHECK(micro_metrics.at("critic_micro_batches") == 3);  // rank 0's own passes
  CHECK(micro.second.second.at("critic_micro_batches") == 4);
}

TEST_CASE("step 3: --max_tokens_per_microbatch is refused with an algorithm that does not declare support, and when negative",
          "[actors][step3][micro_batches]") {
  struct PlainMean : rl::Algorithm {
    std::string name() const override { return "plain_mean"; }
    rl::AlgorithmRoles roles() const override { return {}; }
    void compute_advantages(rl::Experience&) override {}
    torch::Tensor policy_loss(const torch::Tensor& logprobs, const rl::Experience&) const override {
      return logprobs.mean();
    }
  };
  auto own = std::make_shared<PlainMean>();
  const auto exp = test::varied_rollouts();
  auto make_policy = [&](std::shared_ptr<const rl::Algorithm> algorithm, int64_t max_tokens) {
    actors::PolicyRole policy(std::make_shared<engine::HybridEngine>(fresh_policy()), engine::TrainOptions{},
                              models::GenerationOptions{}, std::move(algorithm), one_minibatch(exp, max_tokens), {});
    (void)policy;
  };
  CHECK_NOTHROW(make_policy(own, 0));
  CHECK_THROWS_WITH(make_policy(own, 64), Catch::Contains("--max_tokens_per_microbatch 64") &&
                                              Catch::Contains("'plain_mean' does not declare") &&
                                              Catch::Contains("supports_micro_batches"));
  CHECK_THROWS_WITH(make_policy(rl::AlgorithmRegistry::global().create("grpo"), -1),
                    Catch::Contains("--max_tokens_per_microbatch -1: must be >= 0"));

  // A step-3 run refuses it while planning, before any model loads.
  if (!rl::AlgorithmRegistry::global().contains("plain_mean"))
    rl::AlgorithmRegistry::global().register_algorithm(
        "plain_mean", [](const rl::AlgorithmOptions&) { return std::make_unique<PlainMean>(); });
  testing::Step3World world("micro_batches_refused");
  auto config = world.config("refused");
  config.algorithm = "plain_mean";
  config.actor_model = world.root / "no_such_model";
  config.max_tokens_per_microbatch = 64;
  CHECK_THROWS_WITH(actors::plan_step3(config), Catch::Contains("'plain_mean' does not declare"));
  config.max_tokens_per_microbatch = 0;
  CHECK_NOTHROW(actors::plan_step3(config));
}
