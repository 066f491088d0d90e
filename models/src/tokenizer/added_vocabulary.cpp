#include "tokenizer/added_vocabulary.hpp"

#include <unicode/uchar.h>

#include "tokenizer/utf8.hpp"

namespace troupe::models::tokenizer {
namespace {

/// Rust's `char::is_whitespace` (the White_Space property), which `tokenizers` strips.
bool is_whitespace(int32_t cp) { return cp >= 0 && u_isUWhiteSpace(cp); }

/// Rust's `char::is_alphanumeric`: Alphabetic or a numeric category.
bool is_alphanumeric(int32_t cp) {
  return cp >= 0 && (u_isUAlphabetic(cp) || (U_GET_GC_MASK(cp) & U_GC_N_MASK) != 0);
}

/// Start of the code point that ends just before `pos` (an invalid byte is its own).
size_t previous_code_point_start(std::string_view text, size_t pos) {
  for (size_t back = 1; back <= 4 && back <= pos; ++back) {
    auto cp = next_code_point(text, pos - back);
    if (cp.value >= 0 && static_cast<size_t>(cp.length) == back) return pos - back;
  }
  return pos - 1;
}

int32_t code_point_before(std::string_view text, size_t pos) {
  return next_code_point(text, previous_code_point_start(text, pos)).value;
}

}  // namespace

void AddedVocabulary::Trie::insert(std::string_view content, int32_t token) {
  if (content.empty()) return;
  first_byte[static_cast<unsigned char>(content[0])] = true;
  int32_t node = 0;
  for (char ch : content) {
    const auto c = static_cast<unsigned char>(ch);
    int32_t child = -1;
    for (const auto& [byte, index] : nodes[node].children) {
      if (byte == c) child = index;
    }
    if (child < 0) {
      child = static_cast<int32_t>(nodes.size());
      nodes[node].children.emplace_back(c, child);
      nodes.emplace_back();
    }
    node = child;
  }
  nodes[node].token = token;
}

std::optional<std::pair<int32_t, size_t>> AddedVocabulary::Trie::longest_at(std::string_view text, size_t pos) const {
  if (!first_byte[static_cast<unsigned char>(text[pos])]) return std::nullopt;
  std::optional<std::pair<int32_t, size_t>> best;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    int32_t child = -1;
    for (const auto& [byte, index] : nodes[node].children) {
      if (byte == c) child = index;
    }
    if (child < 0) break;
    node = child;
    if (nodes[node].token >= 0) best = std::make_pair(nodes[node].token, i + 1 - pos);
  }
  return best;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, const std::vector<std::string>& normalized_contents)
    : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const auto& token = tokens_[i];
    ids_[token.content] = token.id;
    by_id_[token.id] = i;
    id_bound_ = std::max<int64_t>(id_bound_, token.id + 1);
    if (token.normalized) {
      normalized_trie_.insert(normalized_contents[i], static_cast<int32_t>(i));
    } else {
      raw_trie_.insert(token.content, static_cast<int32_t>(i));
    }
  }
}

void AddedVocabulary::split(std::string_view text, bool normalized, std::vector<Segment>& out) const {
  const Trie& trie = normalized ? normalized_trie_ : raw_trie_;
  size_t done = 0;  // end of the last emitted token
  for (size_t pos = 0; pos < text.size();) {
    auto match = trie.longest_at(text, pos);
    if (!match) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[static_cast<size_t>(match->first)];
    size_t start = pos;
    size_t stop = pos + match->second;
    pos = stop;
    if (start < done) continue;  // inside text an rstrip already consumed
    if (token.single_word) {
      const bool space_before = start == 0 || !is_alphanumeric(code_point_before(text, start));
      const bool space_after = stop == text.size() || !is_alphanumeric(next_code_point(text, stop).value);
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) {
      while (start > done) {
        const size_t before = previous_code_point_start(text, start);
        if (!is_whitespace(next_code_point(text, before).value)) break;
        start = before;
      }
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        const auto cp = next_code_point(text, stop);
        if (!is_whitespace(cp.value)) break;
        stop += static_cast<size_t>(cp.length);
      }
      pos = stop;
    }
    if (done < start) out.push_back({text.substr(done, start - done), -1});
    out.push_back({text.substr(start, stop - start), token.id});
    done = stop;
  }
  if (done < text.size() || text.empty()) out.push_back({text.substr(done), -1});
}

std::optional<int32_t> AddedVocabulary::token_to_id(const std::string& content) const {
  auto it = ids_.find(content);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const std::string* AddedVocabulary::id_to_token(int64_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second].content;
}

bool AddedVocabulary::is_special(int64_t id) const {
  auto it = by_id_.find(id);
  return it != by_id_.end() && tokens_[it->second].special;
}

}  // namespace troupe::models::tokenizer
