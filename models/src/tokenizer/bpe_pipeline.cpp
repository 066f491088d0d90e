#include "tokenizer/bpe_pipeline.hpp"

#include "tokenizer/byte_level.hpp"
#include "tokenizer/gpt2_split.hpp"

namespace troupe::models::tokenizer {

void BpePipeline::encode_plain(std::string_view text, std::vector<int64_t>& ids) const {
  thread_local std::vector<std::string_view> words;
  // The common case, one ByteLevel stage, splits views of the text without copies.
  if (pre_tokenizer.size() == 1) {
    const auto& stage = pre_tokenizer.front();
    std::string prefixed;
    if (stage.add_prefix_space && text[0] != ' ') {
      prefixed = " " + std::string(text);
      text = prefixed;
    }
    words.clear();
    if (stage.use_regex) {
      split_gpt2(text, words);
    } else {
      words.push_back(text);
    }
    for (auto word : words) model->tokenize_bytes(word, ids);
    return;
  }
  std::vector<std::string> pieces{std::string(text)};
  for (const auto& stage : pre_tokenizer) {
    std::vector<std::string> next;
    for (auto& piece : pieces) {
      if (stage.kind == PreTokenizerStage::Kind::byte_level && stage.add_prefix_space &&
          (piece.empty() || piece[0] != ' ')) {
        piece.insert(piece.begin(), ' ');
      }
      words.clear();
      if (stage.kind == PreTokenizerStage::Kind::split_llama3) {
        split_llama3(piece, words);
        for (auto part : words) next.emplace_back(part);
      } else if (stage.kind == PreTokenizerStage::Kind::split_gpt2 || stage.use_regex) {
        split_gpt2(piece, words);
        for (auto part : words) next.emplace_back(part);
      } else {
        next.push_back(std::move(piece));
      }
    }
    pieces = std::move(next);
  }
  // The byte-level stage is last (the parser checks), so every piece is a word now.
  for (const auto& word : pieces) model->tokenize_bytes(word, ids);
}

std::vector<int64_t> BpePipeline::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int64_t> ids;
  std::vector<Segment> raw;
  std::vector<Segment> normalized;
  added.split(text, /*normalized=*/false, raw);
  for (const auto& segment : raw) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    if (segment.text.empty()) continue;
    const std::string normal = normalizer.empty() ? std::string(segment.text) : normalizer.apply(segment.text);
    normalized.clear();
    added.split(normal, /*normalized=*/true, normalized);
    for (const auto& part : normalized) {
      if (part.id >= 0) {
        ids.push_back(part.id);
      } else if (!part.text.empty()) {
        encode_plain(part.text, ids);
      }
    }
  }
  if (add_special_tokens) {
    for (const auto& pieces : post_processors) {
      std::vector<int64_t> framed;
      for (const auto& piece : pieces) {
        const auto& source = piece.is_sequence ? ids : piece.ids;
        framed.insert(framed.end(), source.begin(), source.end());
      }
      ids = std::move(framed);
    }
  }
  return ids;
}

const std::string* BpePipeline::id_to_token(int64_t id) const {
  if (const auto* token = added.id_to_token(id)) return token;
  return model->id_to_token(id);
}

std::string BpePipeline::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string out;
  bool first = true;
  for (int64_t id : ids) {
    const std::string* token = id_to_token(id);
    if (!token || (skip_special_tokens && added.is_special(id))) continue;  // as `tokenizers`: unknown ids vanish
    if (byte_level_decoder) {
      // A token that is not all byte-level symbols (an added "New York") is its own UTF-8.
      if (!append_from_byte_level(*token, out)) out += *token;
    } else {
      if (!first) out += ' ';
      out += *token;
    }
    first = false;
  }
  return out;
}

}  // namespace troupe::models::tokenizer
