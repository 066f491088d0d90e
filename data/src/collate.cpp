/// Padding token arrays into step batches.
#include <troupe/data/collate.hpp>

#include <algorithm>

#include <troupe/common/error.hpp>
#include <troupe/models/tokenizer.hpp>

namespace troupe::data {
namespace {

/// Rows copied into a (B, width) tensor pair, right or left aligned; rows longer than
/// `width` are cut at the end.
std::pair<at::Tensor, at::Tensor> pad_rows(const std::vector<TokenSpan>& rows, int64_t width, int64_t pad_id, bool left) {
  const auto batch = static_cast<int64_t>(rows.size());
  auto ids = at::full({batch, width}, pad_id, at::kLong);  // (B, T)
  auto mask = at::zeros({batch, width}, at::kLong);        // (B, T)
  auto* id_data = ids.data_ptr<int64_t>();
  auto* mask_data = mask.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    const auto& row = rows[static_cast<size_t>(b)];
    const int64_t len = std::min(row.size, width);
    const int64_t start = left ? width - len : 0;
    for (int64_t t = 0; t < len; ++t) {
      id_data[b * width + start + t] = row.data[t];
      mask_data[b * width + start + t] = 1;
    }
  }
  return {ids, mask};
}

std::vector<TokenSpan> spans(const PhaseDataset& data, Field f, const std::vector<int64_t>& indices) {
  std::vector<TokenSpan> out;
  out.reserve(indices.size());
  for (int64_t i : indices) out.push_back(data.get(f, i));
  return out;
}

void check_width(int64_t width, const char* name) {
  if (width <= 0) throw Error(std::string(name) + " must be positive, got " + std::to_string(width));
}

}  // namespace

int64_t pad_token_id(const models::Tokenizer& tokenizer) {
  if (auto pad = tokenizer.pad_token_id()) return *pad;
  if (auto eos = tokenizer.eos_token_id()) return *eos;
  return 0;
}

LmBatch make_step1_batch(const std::vector<TokenSpan>& sequences, int64_t max_seq_len, int64_t pad_id) {
  check_width(max_seq_len, "max_seq_len");
  auto [ids, mask] = pad_rows(sequences, max_seq_len, pad_id, /*left=*/false);
  // The mask, not the pad id, marks padding: with pad == eos the real EOS keeps its loss.
  auto labels = at::where(mask.to(at::kBool), ids, at::full_like(ids, kIgnoreIndex));  // (B, T)
  return {ids, mask, labels};
}

LmBatch make_step1_batch(const PhaseDataset& data, const std::vector<int64_t>& indices, int64_t max_seq_len, int64_t pad_id) {
  return make_step1_batch(spans(data, Field::chosen, indices), max_seq_len, pad_id);
}

PairBatch make_step2_batch(const std::vector<TokenSpan>& chosen, const std::vector<TokenSpan>& rejected,
                           int64_t max_seq_len, int64_t pad_id) {
  check_width(max_seq_len, "max_seq_len");
  if (chosen.size() != rejected.size())
    throw Error("make_step2_batch: " + std::to_string(chosen.size()) + " chosen but " + std::to_string(rejected.size()) +
                " rejected sequences");
  std::vector<TokenSpan> rows = chosen;
  rows.insert(rows.end(), rejected.begin(), rejected.end());
  auto [ids, mask] = pad_rows(rows, max_seq_len, pad_id, /*left=*/false);
  return {ids, mask, static_cast<int64_t>(chosen.size())};
}

PairBatch make_step2_batch(const PhaseDataset& data, const std::vector<int64_t>& indices, int64_t max_seq_len, int64_t pad_id) {
  return make_step2_batch(spans(data, Field::chosen, indices), spans(data, Field::rejected, indices), max_seq_len, pad_id);
}

PromptBatch make_step3_batch(const std::vector<TokenSpan>& prompts, int64_t max_prompt_seq_len, int64_t pad_id) {
  check_width(max_prompt_seq_len, "max_prompt_seq_len");
  for (size_t i = 0; i < prompts.size(); ++i)
    if (prompts[i].size > max_prompt_seq_len)
      throw Error("make_step3_batch: prompt " + std::to_string(i) + " has " + std::to_string(prompts[i].size) +
                  " tokens, over max_prompt_seq_len " + std::to_string(max_prompt_seq_len) +
                  " (prompts are dropped, never cut: build the phase with the same max_prompt_seq_len)");
  auto [ids, mask] = pad_rows(prompts, max_prompt_seq_len, pad_id, /*left=*/true);
  return {ids, mask};
}

PromptBatch make_step3_batch(const PhaseDataset& data, const std::vector<int64_t>& indices, int64_t max_prompt_seq_len,
                             int64_t pad_id) {
  return make_step3_batch(spans(data, Field::prompt, indices), max_prompt_seq_len, pad_id);
}

}  // namespace troupe::data
