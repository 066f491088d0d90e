#pragma once
/// Rollouts of many lengths for the micro-batch tests: two prompts of 3 and 5 real
/// tokens (left padded to P = 6), four answers each of 2 to 8 tokens (right padded to
/// A = 8), in groups of consecutive rows as the trainer lays them out.
#include <vector>

#include <torch/torch.h>

#include <troupe/rl/experience.hpp>

namespace troupe::test {

/// Token ids in [3, vocab), 0 on padding. Sets reward_score (B,), baseline_reward (B,)
/// and values (B, T-1) at random; the caller sets logprobs and ref_logprobs.
inline rl::Experience varied_rollouts(int64_t vocab = 50, uint64_t seed = 11) {
  constexpr int64_t P = 6, A = 8, T = P + A, B = 8, group = 4;
  const std::vector<int64_t> prompt_tokens = {3, 5};
  const std::vector<int64_t> answer_tokens = {2, 8, 5, 3, 7, 2, 6, 4};
  torch::manual_seed(seed);
  auto sequences = torch::randint(3, vocab, {B, T}, torch::kLong);  // (B, T)
  auto mask = torch::ones({B, T}, torch::kLong);                     // (B, T)
  for (int64_t b = 0; b < B; ++b) {
    sequences[b].narrow(0, 0, P).copy_(sequences[b / group * group].narrow(0, 0, P));  // a group shares its prompt
    const int64_t left = P - prompt_tokens[static_cast<size_t>(b / group)];
    const int64_t answer = answer_tokens[static_cast<size_t>(b)];
    mask[b].narrow(0, 0, left).zero_();
    mask[b].narrow(0, P + answer, A - answer).zero_();
  }
  sequences.mul_(mask);  // padding is token 0
  auto exp = rl::Experience::from_generation(sequences.narrow(1, 0, P).clone(), sequences, mask);
  exp.reward_score = torch::randn({B});       // (B,)
  exp.baseline_reward = torch::randn({B});    // (B,)
  exp.values = torch::randn({B, T - 1});      // (B, T-1)
  return exp;
}

}  // namespace troupe::test
