#pragma once
/// Collators: token arrays to the (B, T) tensors each training step consumes.
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include <troupe/data/token_cache.hpp>

namespace troupe::models {
class Tokenizer;
}

namespace troupe::data {

/// Label value the loss ignores (PyTorch's cross_entropy default).
inline constexpr int64_t kIgnoreIndex = -100;

/// Language-model batch: steps 1 and mixture training.
struct LmBatch {
  at::Tensor input_ids;       // (B, T) int64
  at::Tensor attention_mask;  // (B, T) int64, 1 = token
  at::Tensor labels;          // (B, T) int64, input_ids on tokens, -100 on padding
};

/// Reward-model batch: B chosen rows then the B rejected rows of the same pairs.
struct PairBatch {
  at::Tensor input_ids;       // (2B, T)
  at::Tensor attention_mask;  // (2B, T)
  int64_t pairs = 0;          // B
};

/// Step-3 prompts, left padded so generation continues every row at the same column.
struct PromptBatch {
  at::Tensor input_ids;       // (B, P)
  at::Tensor attention_mask;  // (B, P)
};

/// The pad id the collators use: the tokenizer's pad token, else its EOS, else 0.
int64_t pad_token_id(const models::Tokenizer& tokenizer);

/// Step 1: each sequence right padded to `max_seq_len` (longer ones cut); labels are
/// the ids with -100 on padding, so the loss covers every real token, prompt included.
LmBatch make_step1_batch(const std::vector<TokenSpan>& sequences, int64_t max_seq_len, int64_t pad_id);
LmBatch make_step1_batch(const PhaseDataset& data, const std::vector<int64_t>& indices, int64_t max_seq_len, int64_t pad_id);

/// Step 2: chosen and rejected sequences right padded to `max_seq_len`, stacked as
/// [chosen_0..chosen_B-1, rejected_0..rejected_B-1].
PairBatch make_step2_batch(const std::vector<TokenSpan>& chosen, const std::vector<TokenSpan>& rejected,
                           int64_t max_seq_len, int64_t pad_id);
PairBatch make_step2_batch(const PhaseDataset& data, const std::vector<int64_t>& indices, int64_t max_seq_len, int64_t pad_id);

/// Step 3: prompts left padded to `max_prompt_seq_len`. Prompts are never cut: the
/// cache already dropped longer ones (counted as prompt_too_long); a longer one here
/// throws troupe::Error.
PromptBatch make_step3_batch(const std::vector<TokenSpan>& prompts, int64_t max_prompt_seq_len, int64_t pad_id);
PromptBatch make_step3_batch(const PhaseDataset& data, const std::vector<int64_t>& indices, int64_t max_prompt_seq_len,
                             int64_t pad_id);

}  // namespace troupe::data
