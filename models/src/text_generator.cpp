#include <troupe/models/text_generator.hpp>

#include <algorithm>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::models {

std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int64_t>>& rows, int64_t pad_id) {
  size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.size());
  const auto B = static_cast<int64_t>(rows.size());
  const auto T = static_cast<int64_t>(width);
  auto ids = torch::full({B, T}, pad_id, torch::kLong);  // (B, T)
  auto mask = torch::zeros({B, T}, torch::kLong);        // (B, T)
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const auto offset = T - static_cast<int64_t>(rows[i].size());
    for (size_t j = 0; j < rows[i].size(); ++j) {
      ids_a[i][offset + j] = rows[i][j];
      mask_a[i][offset + j] = 1;
    }
  }
  return {ids, mask};
}

TextGenerator::TextGenerator(CausalLM model, std::shared_ptr<const Tokenizer> tokenizer, GenerationOptions options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), options_(std::move(options)) {
  const auto& config = model_->config();
  if (options_.eos_token_ids.empty()) {
    if (auto eos = tokenizer_->eos_token_id()) options_.eos_token_ids.push_back(*eos);
    else if (config.eos_token_id) options_.eos_token_ids.push_back(*config.eos_token_id);
  }
  if (!options_.pad_token_id) {
    if (auto pad = tokenizer_->pad_token_id()) options_.pad_token_id = pad;
    else if (config.pad_token_id) options_.pad_token_id = config.pad_token_id;
    else if (!options_.eos_token_ids.empty()) options_.pad_token_id = options_.eos_token_ids.front();
    else options_.pad_token_id = 0;
  }
}

std::vector<Completion> TextGenerator::complete(const std::vector<std::string>& prompts) const {
  std::vector<std::vector<int64_t>> ids;
  for (const auto& p : prompts) {
    ids.push_back(tokenizer_->encode(p, /*add_special_tokens=*/true));
    if (ids.back().empty()) throw Error("prompt \"" + p + "\" encodes to no tokens");
  }
  return complete_ids(ids);
}

std::vector<Completion> TextGenerator::complete_ids(const std::vector<std::vector<int64_t>>& prompt_ids) const {
  if (prompt_ids.empty()) return {};
  auto [ids, mask] = left_pad(prompt_ids, *options_.pad_token_id);  // (B, T0)
  const auto device = model_->input_embedding_weight().device();
  auto out = generate(*model_, ids.to(device), mask.to(device), options_);
  auto sequences = out.sequences.cpu();  // (B, T0 + N)
  auto out_mask = out.attention_mask.cpu();
  auto seq_a = sequences.accessor<int64_t, 2>();
  auto mask_a = out_mask.accessor<int64_t, 2>();
  std::vector<Completion> completions;
  for (size_t i = 0; i < prompt_ids.size(); ++i) {
    Completion c;
    c.prompt_ids = prompt_ids[i];
    for (int64_t j = out.prompt_length; j < sequences.size(1); ++j)
      if (mask_a[i][j] == 1) c.completion_ids.push_back(seq_a[i][j]);
    c.text = tokenizer_->decode(c.completion_ids, /*skip_special_tokens=*/true);
    completions.push_back(std::move(c));
  }
  return completions;
}

}  // namespace troupe::models
