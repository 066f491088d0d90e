#pragma once
/// The parsed stages of a byte-level BPE `tokenizer.json`: what encode() and decode()
/// run, in Hugging Face's order (added tokens, normalizer, pre-tokenizer, model,
/// post-processor; decoder on the way back).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/added_vocabulary.hpp"
#include "tokenizer/bpe_model.hpp"
#include "tokenizer/normalizer.hpp"

namespace troupe::models::tokenizer {

/// One pre-tokenizer of the (possibly `Sequence`) pre_tokenizer field.
struct PreTokenizerStage {
  enum class Kind { split_gpt2, split_llama3, byte_level };
  Kind kind = Kind::byte_level;
  bool add_prefix_space = false;  // byte_level only
  bool use_regex = true;          // byte_level only
};

/// One item of a post-processor's single-sequence template: the text's ids or fixed ids.
struct TemplatePiece {
  bool is_sequence = false;
  std::vector<int64_t> ids;
};
using Template = std::vector<TemplatePiece>;

struct BpePipeline {
  Normalizer normalizer;
  std::vector<PreTokenizerStage> pre_tokenizer;  // ends with the byte_level stage
  std::unique_ptr<BpeModel> model;
  AddedVocabulary added;
  std::vector<Template> post_processors;  // applied in order; ByteLevel adds none
  bool byte_level_decoder = true;          // false: tokens joined with spaces, as without a decoder

  /// Ids of `text` (valid UTF-8 or not), with the post-processors when `add_special_tokens`.
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const;
  /// The token string of `id`, added tokens first; nullptr when no token has that id.
  const std::string* id_to_token(int64_t id) const;

 private:
  void encode_plain(std::string_view text, std::vector<int64_t>& ids) const;
};

}  // namespace troupe::models::tokenizer
