#pragma once
/// Helpers of the critic-free algorithm tests: the batch and the cases of
/// make_rl_algorithm_fixtures.py as an Experience and as AlgorithmOptions.
#include <string>

#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/experience.hpp>

#include "rl_fixtures.hpp"

namespace troupe::test {

/// The fixture's "inputs" as the trainer would hand them to compute_advantages.
inline rl::Experience fixture_experience(const nlohmann::json& inputs) {
  auto exp = rl::Experience::from_generation(fixture_tensor(inputs.at("prompts")), fixture_tensor(inputs.at("sequences")),
                                             fixture_tensor(inputs.at("attention_mask")));
  exp.logprobs = fixture_tensor(inputs.at("logprobs"));          // (B, T-1)
  exp.ref_logprobs = fixture_tensor(inputs.at("ref_logprobs"));  // (B, T-1)
  exp.reward_score = fixture_tensor(inputs.at("reward_score"));  // (B,)
  return exp;
}

/// A case's "config": its keys are the algorithm's option names, so creating the
/// algorithm from it also checks that the factory reads every one of them.
inline rl::AlgorithmOptions fixture_options(const nlohmann::json& config) {
  rl::AlgorithmOptions options;
  for (const auto& [key, value] : config.items()) options.set(key, value.get<double>());
  return options;
}

/// An experience of rows with P = 2, T = 6 (A = 4 answer positions, start = 1): row b
/// has prompt [prompt_ids[b], 9] and answer_lengths[b] answer tokens (EOS included),
/// then padding; logprobs 0 and ref_logprobs 0 unless the caller sets them.
inline rl::Experience small_experience(const std::vector<int64_t>& prompt_ids, const std::vector<int64_t>& answer_lengths,
                                       const std::vector<float>& scores) {
  const auto B = static_cast<int64_t>(prompt_ids.size());
  auto prompts = torch::full({B, 2}, 9L, torch::kLong);  // (B, P)
  auto sequences = torch::zeros({B, 6}, torch::kLong);   // (B, T)
  auto mask = torch::zeros({B, 6}, torch::kLong);        // (B, T)
  for (int64_t b = 0; b < B; ++b) {
    prompts[b][0] = prompt_ids[static_cast<size_t>(b)];
    sequences[b].narrow(0, 0, 2).copy_(prompts[b]);
    const int64_t n = answer_lengths[static_cast<size_t>(b)];
    sequences[b].narrow(0, 2, n).fill_(5);
    sequences[b][1 + n] = 2;  // EOS
    mask[b].narrow(0, 0, 2 + n).fill_(1);
  }
  auto exp = rl::Experience::from_generation(prompts, sequences, mask);
  exp.logprobs = torch::zeros({B, 5});
  exp.ref_logprobs = torch::zeros({B, 5});
  exp.reward_score = torch::tensor(scores);
  return exp;
}

}  // namespace troupe::test
