#pragma once
/// The tensors step-3 batches carry between roles, each name declared once with its
/// shape. B rows, T0 prompt positions, T = T0 + new tokens.
namespace troupe::actors::keys {

// The prompts (what policy.generate reads).
inline constexpr const char* input_ids = "input_ids";            // (B, T0) int64, left-padded
inline constexpr const char* attention_mask = "attention_mask";  // (B, T0) or (B, T) int64, 1 = token
// Optional, with the prompts: this batch's sampling instead of the actor's own (the
// evaluation's fixed seed, greedy or sampled). Per row, every row the same.
inline constexpr const char* do_sample = "do_sample";              // (B) int64, 0 = greedy
inline constexpr const char* generation_seed = "generation_seed";  // (B) int64

// The generated sequences (what policy.generate writes and every score reads).
inline constexpr const char* sequences = "sequences";          // (B, T) int64
inline constexpr const char* prompt_length = "prompt_length";  // (B) int64, T0 in every row
// With them, for an algorithm that needs_greedy_baseline() (ReMax): the greedy answer to
// each row's prompt, padded to the same T; the reward role scores it too.
inline constexpr const char* greedy_sequences = "greedy_sequences";            // (B, T) int64
inline constexpr const char* greedy_attention_mask = "greedy_attention_mask";  // (B, T) int64
// With --async_rollout (async_rollout.hpp), the rollout copy's batch also carries:
inline constexpr const char* rollout_weights_version = "rollout_weights_version";  // (B) int64, updates in the generating weights
inline constexpr const char* rollout_logprobs = "rollout_logprobs";  // (B, T-1) fp32, the generating weights' log-probs

// The four scores.
inline constexpr const char* logprobs = "logprobs";          // (B, T-1) fp32, policy.score: log p(token t+1)
inline constexpr const char* ref_logprobs = "ref_logprobs";  // (B, T-1) fp32, reference.score
inline constexpr const char* values = "values";              // (B, T-1) fp32, critic.score
inline constexpr const char* reward_score = "reward_score";  // (B) fp32, reward.score: one per answer
inline constexpr const char* baseline_reward = "baseline_reward";  // (B) fp32, reward.score of the greedy answers

}  // namespace troupe::actors::keys
