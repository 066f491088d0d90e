#pragma once
/// Dropping rollouts whose answer is too short to learn from (DeepSpeed-Chat drops
/// answers with <= 1 non-pad token before making experience).
#include <torch/types.h>

#include <troupe/rl/experience.hpp>

namespace troupe::rl {

/// Indices (K,) int64 of the rows whose answer, attention_mask[:, prompt_length:], has
/// at least `min_tokens` real tokens. The EOS is a real token here (troupe keeps it in
/// the mask), so the default 2 drops answers that are nothing but EOS.
torch::Tensor long_answer_rows(const torch::Tensor& attention_mask, int64_t prompt_length,
                               int64_t min_tokens = 2);

/// The experience without its short-answer rows (may be empty: check batch_size()).
Experience drop_short_answers(const Experience& exp, int64_t min_tokens = 2);

}  // namespace troupe::rl
