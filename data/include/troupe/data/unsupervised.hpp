#pragma once
/// Unsupervised text for mixture (ptx) training: a corpus tokenized, concatenated and
/// cut into blocks of max_prompt_seq_len + max_answer_seq_len, as DeepSpeed-Chat's
/// get_unsupervised_data does (the remainder that does not fill a block is dropped).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <troupe/data/collate.hpp>

namespace troupe::data {

/// Texts of a corpus file: `.txt` one text per non-empty line (as Hugging Face's
/// "text" loader); `.json`/`.jsonl` rows with a string field `text`. Errors name the
/// file, line and field.
std::vector<std::string> read_text_corpus(const std::filesystem::path& path);

struct UnsupervisedBlocks {
  std::vector<int32_t> tokens;  ///< blocks back to back
  int64_t block_size = 0;
  int64_t size() const { return block_size ? static_cast<int64_t>(tokens.size()) / block_size : 0; }
  TokenSpan block(int64_t i) const;
};

/// Tokenizes every text (with the tokenizer's special-token template), concatenates
/// them and cuts blocks of `block_size`; throws troupe::Error when not one block fills.
UnsupervisedBlocks make_unsupervised_blocks(const std::vector<std::string>& texts, const models::Tokenizer& tokenizer,
                                            int64_t block_size);

/// The blocks at `indices` as a batch with labels = input_ids and a full mask.
LmBatch make_unsupervised_batch(const UnsupervisedBlocks& blocks, const std::vector<int64_t>& indices);

}  // namespace troupe::data
