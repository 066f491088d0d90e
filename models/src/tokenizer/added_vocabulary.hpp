#pragma once
/// Tokens added beside the model (`added_tokens` of tokenizer.json): matched in the raw
/// text before the model sees it, longest match first, as Hugging Face does.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe::models::tokenizer {

/// One entry of `added_tokens`.
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

/// A piece of text after splitting on added tokens: `id` >= 0 for an added token.
struct Segment {
  std::string_view text;
  int32_t id;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  /// `normalized_contents[i]` is what tokens[i] is matched as when it is `normalized`
  /// (its content through the tokenizer's normalizer).
  AddedVocabulary(std::vector<AddedToken> tokens, const std::vector<std::string>& normalized_contents);

  /// Splits `text` on the tokens whose `normalized` flag equals `normalized`; applies
  /// their lstrip/rstrip/single_word rules. Plain pieces may be empty.
  void split(std::string_view text, bool normalized, std::vector<Segment>& out) const;

  std::optional<int32_t> token_to_id(const std::string& content) const;
  const std::string* id_to_token(int64_t id) const;
  bool is_special(int64_t id) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  /// One past the largest added id (0 when there are none).
  int64_t id_bound() const { return id_bound_; }

 private:
  /// A byte trie over the token contents of one kind (normalized or not).
  struct Trie {
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> children;
      int32_t token = -1;  // index into tokens_
    };
    std::vector<Node> nodes{Node{}};
    bool first_byte[256] = {};
    void insert(std::string_view content, int32_t token);
    /// Index into tokens_ and length of the longest token starting at `pos`, if any.
    std::optional<std::pair<int32_t, size_t>> longest_at(std::string_view text, size_t pos) const;
  };

  std::vector<AddedToken> tokens_;
  Trie raw_trie_;
  Trie normalized_trie_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<int64_t, size_t> by_id_;
  int64_t id_bound_ = 0;
};

}  // namespace troupe::models::tokenizer
