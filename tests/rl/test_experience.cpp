/// Experience: shape checks, slicing into minibatches, concatenation with padding.
#include <troupe/common/error.hpp>
#include <troupe/rl/experience.hpp>

#include "rl_fixtures.hpp"

using namespace troupe;

namespace {

/// B rows, prompt length P, sequence length T; values numbered so rows are recognisable.
rl::Experience numbered(int64_t B, int64_t P, int64_t T, float offset) {
  auto seq = torch::arange(B * T, torch::kLong).view({B, T}) + 3;  // (B, T)
  auto exp = rl::Experience::from_generation(seq.narrow(1, 0, P).clone(), seq, torch::ones({B, T}, torch::kLong));
  exp.logprobs = torch::arange(B * (T - 1), torch::kFloat).view({B, T - 1}) + offset;  // (B, T-1)
  exp.reward_score = torch::arange(B, torch::kFloat) + offset;                        // (B,)
  exp.advantages = torch::full({B, T - P}, offset);                                   // (B, A)
  return exp;
}

}  // namespace

TEST_CASE("Experience::from_generation derives the action mask", "[experience]") {
  const auto mask = torch::tensor({{0, 1, 1, 1, 0}, {1, 1, 1, 1, 1}}, torch::kLong);  // (B, T)
  auto exp = rl::Experience::from_generation(torch::zeros({2, 2}, torch::kLong), torch::zeros({2, 5}, torch::kLong),
                                             mask);
  CHECK(torch::equal(exp.action_mask, mask.narrow(1, 1, 4)));
  CHECK(exp.batch_size() == 2);
  CHECK(exp.prompt_length() == 2);
  CHECK(exp.answer_length() == 3);
  CHECK(exp.start() == 1);
}

TEST_CASE("Experience::validate names the tensor with the wrong shape", "[experience]") {
  auto exp = numbered(3, 2, 6, 0);
  exp.validate();
  exp.values = torch::zeros({3, 6});  // should be (B, T-1)
  CHECK_THROWS_WITH(exp.validate(), Catch::Contains("values") && Catch::Contains("[3, 6]"));
  exp.values = torch::zeros({3, 5});
  exp.returns = torch::zeros({2, 4});  // wrong B
  CHECK_THROWS_WITH(exp.validate(), Catch::Contains("returns"));
  exp.returns = torch::Tensor();
  exp.set_extra("baseline", rl::Layout::Sample, torch::zeros({4}));
  CHECK_THROWS_WITH(exp.validate(), Catch::Contains("baseline"));
  CHECK_THROWS_AS(rl::Experience::from_generation(torch::zeros({3, 6}, torch::kLong), torch::zeros({3, 6}, torch::kLong),
                                                  torch::ones({3, 6}, torch::kLong)),
                  troupe::Error);  // no answer position
  CHECK_THROWS_AS(rl::Experience::from_generation(torch::zeros({3, 2}), torch::zeros({3, 6}, torch::kLong),
                                                  torch::ones({3, 6}, torch::kLong)),
                  troupe::Error);  // float prompt ids
  CHECK_THROWS_WITH(exp.extra("nope"), Catch::Contains("baseline"));
}

TEST_CASE("Experience splits into minibatches and selects rows", "[experience]") {
  auto exp = numbered(5, 2, 6, 0);
  exp.set_extra("weight", rl::Layout::Sample, torch::arange(5, torch::kFloat));
  const auto parts = exp.split(2);
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].batch_size() == 2);
  CHECK(parts[2].batch_size() == 1);
  CHECK(torch::equal(parts[1].sequences, exp.sequences.narrow(0, 2, 2)));
  CHECK(torch::equal(parts[1].logprobs, exp.logprobs.narrow(0, 2, 2)));
  CHECK(torch::equal(parts[2].extra("weight"), torch::tensor({4.0f})));
  CHECK_FALSE(parts[0].values.defined());
  CHECK_THROWS_AS(exp.slice(3, 6), troupe::Error);
  CHECK_THROWS_AS(exp.split(0), troupe::Error);

  const auto picked = exp.index_select(torch::tensor({4, 0}, torch::kLong));
  CHECK(torch::equal(picked.reward_score, torch::tensor({4.0f, 0.0f})));
  CHECK(torch::equal(picked.action_mask, exp.action_mask.index_select(0, torch::tensor({4, 0}, torch::kLong))));

  // Split then concatenated gives the batch back.
  const auto whole = rl::concat(parts);
  CHECK(torch::equal(whole.sequences, exp.sequences));
  CHECK(torch::equal(whole.logprobs, exp.logprobs));
  CHECK(torch::equal(whole.extra("weight"), exp.extra("weight")));
}

TEST_CASE("concat pads shorter prompts on the left and shorter answers on the right", "[experience]") {
  const auto a = numbered(1, 3, 5, 100);  // P = 3, A = 2
  const auto b = numbered(1, 2, 6, 200);  // P = 2, A = 4
  const auto c = rl::concat({a, b}, /*pad_token_id=*/1);
  REQUIRE(c.prompt_length() == 3);
  REQUIRE(c.sequence_length() == 7);  // P 3 + A 4
  // Row 0: prompt aligned, two pads after its answer; row 1: one pad before its prompt.
  CHECK(torch::equal(c.sequences[0], torch::tensor({3, 4, 5, 6, 7, 1, 1}, torch::kLong)));
  CHECK(torch::equal(c.sequences[1], torch::tensor({1, 3, 4, 5, 6, 7, 8}, torch::kLong)));
  CHECK(torch::equal(c.prompts, torch::tensor({{3, 4, 5}, {1, 3, 4}}, torch::kLong)));
  CHECK(torch::equal(c.attention_mask, torch::tensor({{1, 1, 1, 1, 1, 0, 0}, {0, 1, 1, 1, 1, 1, 1}}, torch::kLong)));
  CHECK(torch::equal(c.action_mask, c.attention_mask.narrow(1, 1, 6)));
  CHECK(torch::equal(c.logprobs[0], torch::tensor({100.0f, 101.0f, 102.0f, 103.0f, 0.0f, 0.0f})));
  CHECK(torch::equal(c.logprobs[1], torch::tensor({0.0f, 200.0f, 201.0f, 202.0f, 203.0f, 204.0f})));
  CHECK(torch::equal(c.advantages, torch::tensor({{100.0f, 100.0f, 0.0f, 0.0f}, {200.0f, 200.0f, 200.0f, 200.0f}})));
  CHECK(torch::equal(c.reward_score, torch::tensor({100.0f, 200.0f})));

  auto missing = b;
  missing.advantages = torch::Tensor();
  CHECK_THROWS_WITH(rl::concat({a, missing}), Catch::Contains("advantages"));
  CHECK_THROWS_AS(rl::concat({}), troupe::Error);
}
