/// Token-budget micro-batches (rl/micro_batches.hpp): how a minibatch's rows are grouped
/// and trimmed, and that every built-in algorithm's losses, divided by the minibatch's
/// counts, add up over the micro-batches to the minibatch's loss, gradients included.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/micro_batches.hpp>

#include "rl_fixtures.hpp"
#include "varied_rollouts.hpp"

using namespace troupe;

namespace {

/// A policy whose log-prob of a token depends on the token alone, theta (V,): it scores
/// the tokens of a trimmed micro-batch as it scores them in the whole minibatch.
torch::Tensor token_logprobs(const torch::Tensor& theta, const rl::Experience& exp) {
  const auto next = exp.sequences.narrow(1, 1, exp.sequence_length() - 1);             // (B, T-1)
  return torch::log_sigmoid(theta.index_select(0, next.reshape(-1))).view(next.sizes());  // (B, T-1)
}

/// A critic of the same kind: the value of a position is phi[token], phi (V,).
torch::Tensor token_values(const torch::Tensor& phi, const rl::Experience& exp) {
  const auto here = exp.sequences.narrow(1, 0, exp.sequence_length() - 1);  // (B, T-1)
  return phi.index_select(0, here.reshape(-1)).view(here.sizes());          // (B, T-1)
}

std::vector<int64_t> ids_of(const rl::Experience& part) {  // reward_score holds each row's index
  std::vector<int64_t> ids;
  for (int64_t b = 0; b < part.batch_size(); ++b) ids.push_back(part.reward_score[b].item<int64_t>());
  return ids;
}

/// 3 micro-batches of varied_rollouts (by length: rows 0 3 5 2 | 7 1 6 | 4).
constexpr int64_t kBudget = 40;

}  // namespace

TEST_CASE("micro-batches: rows grouped by length within the token budget, trimmed, each with the minibatch's totals",
          "[micro_batches]") {
  auto exp = test::varied_rollouts();
  exp.reward_score = torch::arange(exp.batch_size()).to(torch::kFloat);  // (B,) row ids
  const auto real = exp.attention_mask.ne(0);                             // (B, T)
  const auto lengths = real.sum(1);                                       // (B,)
  const auto totals = exp.totals();
  CHECK(totals.rows == 8);
  CHECK(totals.action_tokens == 37);  // answers of 2, 8, 5, 3, 7, 2, 6, 4
  CHECK(totals.answer_width == 8);

  const auto whole = rl::token_budget_micro_batches(exp, 0);
  REQUIRE(whole.size() == 1);
  CHECK_FALSE(whole.front().minibatch_totals);
  CHECK(torch::equal(whole.front().sequences, exp.sequences));

  for (const int64_t budget : std::vector<int64_t>{1, 20, kBudget, 60, 100, 1000}) {
    INFO("budget " << budget);
    const auto parts = rl::token_budget_micro_batches(exp, budget);
    std::set<int64_t> seen;
    int64_t longest_before = 0;
    for (const auto& part : parts) {
      REQUIRE(part.minibatch_totals);
      CHECK(part.minibatch_totals->rows == totals.rows);
      CHECK(part.minibatch_totals->action_tokens == totals.action_tokens);
      CHECK(part.minibatch_totals->answer_width == totals.answer_width);
      CHECK((part.batch_size() * part.sequence_length() <= budget || part.batch_size() == 1));
      // Trimmed: the first and the last column hold a real token of some row.
      CHECK(part.attention_mask.select(1, 0).ne(0).any().item<bool>());
      CHECK(part.attention_mask.select(1, part.sequence_length() - 1).ne(0).any().item<bool>());
      int64_t shortest = 1 << 30, longest = 0;
      for (const int64_t id : ids_of(part)) {
        CHECK(seen.insert(id).second);
        const int64_t length = lengths[id].item<int64_t>();
        shortest = std::min(shortest, length);
        longest = std::max(longest, length);
        // The row's real tokens, and where the answer starts, are what they were.
        const auto row = ids_of(part);
        const int64_t at = std::find(row.begin(), row.end(), id) - row.begin();
        CHECK(torch::equal(part.sequences[at].masked_select(part.attention_mask[at].ne(0)),
                           exp.sequences[id].masked_select(real[id])));
        CHECK(torch::equal(part.sequences[at].narrow(0, part.prompt_length(), part.answer_length()),
                           exp.sequences[id].narrow(0, exp.prompt_length(), part.answer_length())));
      }
      CHECK(shortest >= longest_before);  // filled in order of length
      longest_before = longest;
    }
    CHECK(seen.size() == 8);
    if (budget == 1) CHECK(parts.size() == 8);     // every row is longer: each alone
    if (budget == kBudget) CHECK(parts.size() == 3);
    if (budget == 1000) CHECK(parts.size() == 1);  // all fit: the minibatch, trimmed
  }
}

TEST_CASE("micro-batches: every built-in algorithm's loss and gradient are the minibatch's, summed over its micro-batches",
          "[micro_batches]") {
  const std::vector<std::pair<std::string, rl::AlgorithmOptions>> cases = {
      {"ppo", {}},
      {"ppo", {{"whiten_advantages", 1}}},
      {"grpo", {}},
      {"grpo", {{"token_mean", 1}}},
      {"grpo", {{"kl_in_reward", 1}}},
      {"dr_grpo", {}},
      {"dr_grpo", {{"generate_max_len", 12}, {"kl_coef", 0.05}}},
      {"rloo", {}},
      {"rloo", {{"token_mean", 0}}},
      {"reinforce++", {}},
      {"reinforce++", {{"token_mean", 0}}},
      {"reinforce++_baseline", {}},
      {"remax", {}},
      {"remax", {{"token_mean", 0}}},
  };
  for (const auto& [name, options] : cases) {
    std::string settings;
    for (const auto& [key, value] : options.values()) settings += " " + key + "=" + std::to_string(value);
    INFO(name << settings);
    auto exp = test::varied_rollouts();
    torch::manual_seed(5);
    const auto theta = (0.5 * torch::randn({50}, torch::kDouble)).requires_grad_();  // (V,)
    const auto phi = torch::randn({50}, torch::kDouble).requires_grad_();            // (V,)
    {
      torch::NoGradGuard no_grad;
      const auto sampled = token_logprobs(theta, exp).to(torch::kFloat);  // (B, T-1)
      // The sampling and the reference policy a little apart, so ratios clip and KLs count.
      exp.logprobs = sampled + 0.2 * torch::randn_like(sampled);
      exp.ref_logprobs = sampled + 0.2 * torch::randn_like(sampled);
    }
    auto algorithm = rl::AlgorithmRegistry::global().create(name, options);
    REQUIRE(algorithm->supports_micro_batches());
    algorithm->compute_advantages(exp);
    const bool critic = algorithm->roles().critic;

    auto loss_of = [&](const rl::Experience& rows) {
      auto loss = algorithm->policy_loss(token_logprobs(theta, rows), rows);
      if (critic) loss = loss + algorithm->value_loss(token_values(phi, rows), rows);
      return loss;
    };
    const auto plain = loss_of(exp);
    const auto plain_grads = torch::autograd::grad({plain}, {theta, phi}, {}, false, false, /*allow_unused=*/true);

    const auto parts = rl::token_budget_micro_batches(exp, kBudget);
    REQUIRE(parts.size() == 3);
    auto summed = torch::zeros({}, torch::kDouble);
    for (const auto& part : parts) summed = summed + loss_of(part);
    const auto summed_grads = torch::autograd::grad({summed}, {theta, phi}, {}, false, false, true);

    CHECK(summed.item<double>() == Approx(plain.item<double>()).epsilon(1e-9).margin(1e-12));
    for (size_t i = 0; i < (critic ? 2u : 1u); ++i) {
      REQUIRE(plain_grads[i].defined());
      CHECK(plain_grads[i].abs().max().item<double>() > 0);
      CHECK_CLOSE(summed_grads[i], plain_grads[i], 1e-9 * plain_grads[i].abs().max().item<double>());
    }
  }
}

TEST_CASE("micro-batches: an algorithm declares that it supports them; the default is no", "[micro_batches]") {
  struct Own : rl::Algorithm {
    std::string name() const override { return "own"; }
    rl::AlgorithmRoles roles() const override { return {}; }
    void compute_advantages(rl::Experience&) override {}
    torch::Tensor policy_loss(const torch::Tensor& logprobs, const rl::Experience&) const override {
      return logprobs.sum();
    }
  };
  CHECK_FALSE(Own().supports_micro_batches());
  rl::AlgorithmRegistry builtin;
  rl::register_builtin_algorithms(builtin);
  CHECK(builtin.names().size() == 7);
  for (const auto& name : builtin.names()) {
    INFO(name);
    CHECK(builtin.create(name)->supports_micro_batches());
  }
}
