#pragma once
/// The BPE model of Hugging Face `tokenizers`: vocabulary, ranked merges and the
/// merge loop that turns one pre-tokenized word into ids.
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace troupe::models::tokenizer {

/// The model fields of `tokenizer.json` besides vocab and merges; null fields are nullopt.
struct BpeModelOptions {
  std::optional<std::string> unk_token;
  std::optional<std::string> continuing_subword_prefix;
  std::optional<std::string> end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  /// Throws troupe::Error naming `where` when a merge or the unk token is not in the vocabulary.
  BpeModel(std::unordered_map<std::string, int32_t> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeModelOptions options,
           const std::string& where);

  /// Appends the ids of one pre-tokenized word, given as raw bytes, to `out`: its bytes
  /// become byte-level symbols, then merge. Words seen before come from a cache keyed by
  /// the raw bytes, which is what makes natural text fast.
  void tokenize_bytes(std::string_view word, std::vector<int64_t>& out) const;

  std::optional<int32_t> token_to_id(const std::string& token) const;
  /// The token of `id`, or nullptr when the vocabulary has no such id.
  const std::string* id_to_token(int64_t id) const;
  /// One past the largest id of the vocabulary.
  int64_t id_bound() const { return static_cast<int64_t>(tokens_.size()); }
  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  const BpeModelOptions& options() const { return options_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  std::vector<int32_t> merge_word(const std::string& word) const;
  void initial_symbols(const std::string& word, std::vector<int32_t>& ids, std::vector<int32_t>& lengths) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> tokens_;
  std::vector<bool> has_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  BpeModelOptions options_;
  std::optional<int32_t> unk_id_;

  static constexpr size_t cache_capacity_ = 100000;
  static constexpr size_t cache_max_word_bytes_ = 256;
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace troupe::models::tokenizer
