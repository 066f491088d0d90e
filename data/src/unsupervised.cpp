/// Unsupervised corpus reading, block cutting and batches.
#include <troupe/data/unsupervised.hpp>

#include <limits>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/models/tokenizer.hpp>

#include "json_rows.hpp"

namespace troupe::data {

std::vector<std::string> read_text_corpus(const std::filesystem::path& path) {
  std::vector<std::string> texts;
  const auto ext = path.extension().string();
  if (ext == ".json" || ext == ".jsonl") {
    for (const auto& row : detail::read_json_rows(path)) {
      const std::string where = path.string() + ":" + std::to_string(row.line) + ": ";
      if (!row.value) throw Error(where + row.error);
      if (!row.value->is_object()) throw Error(where + "expected a JSON object with a string field 'text'");
      auto it = row.value->find("text");
      if (it == row.value->end()) throw Error(where + "field 'text': missing (expected a string)");
      if (!it->is_string()) throw Error(where + "field 'text': expected a string, got " + std::string(it->type_name()));
      if (!it->get<std::string>().empty()) texts.push_back(it->get<std::string>());
    }
    return texts;
  }
  const auto content = read_file(path);
  size_t start = 0;
  while (start < content.size()) {
    auto end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    auto line = content.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) texts.push_back(line);
    start = end + 1;
  }
  if (texts.empty()) throw Error(path.string() + ": empty corpus (expected text lines, or JSON rows with 'text')");
  return texts;
}

TokenSpan UnsupervisedBlocks::block(int64_t i) const {
  if (i < 0 || i >= size())
    throw Error("unsupervised block " + std::to_string(i) + " out of range (" + std::to_string(size()) + " blocks)");
  return {tokens.data() + i * block_size, block_size};
}

UnsupervisedBlocks make_unsupervised_blocks(const std::vector<std::string>& texts, const models::Tokenizer& tokenizer,
                                            int64_t block_size) {
  if (block_size <= 0) throw Error("unsupervised block size must be positive, got " + std::to_string(block_size));
  UnsupervisedBlocks out;
  out.block_size = block_size;
  for (const auto& text : texts)
    for (int64_t id : tokenizer.encode(text, /*add_special_tokens=*/true)) {
      if (id < 0 || id > std::numeric_limits<int32_t>::max()) throw Error("token id " + std::to_string(id) + " out of int32 range");
      out.tokens.push_back(static_cast<int32_t>(id));
    }
  const auto total = static_cast<int64_t>(out.tokens.size());
  if (total < block_size)
    throw Error("unsupervised corpus has " + std::to_string(total) + " tokens, fewer than one block of " +
                std::to_string(block_size) + " (max_prompt_seq_len + max_answer_seq_len)");
  out.tokens.resize(static_cast<size_t>(total / block_size * block_size));
  return out;
}

LmBatch make_unsupervised_batch(const UnsupervisedBlocks& blocks, const std::vector<int64_t>& indices) {
  const auto batch = static_cast<int64_t>(indices.size());
  auto ids = at::empty({batch, blocks.block_size}, at::kLong);  // (B, T)
  auto* data = ids.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    const auto span = blocks.block(indices[static_cast<size_t>(b)]);
    std::copy(span.begin(), span.end(), data + b * blocks.block_size);
  }
  return {ids, at::ones_like(ids), ids.clone()};
}

}  // namespace troupe::data
