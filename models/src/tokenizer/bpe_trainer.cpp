#include <troupe/models/bpe_trainer.hpp>

#include <algorithm>
#include <map>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>

#include "tokenizer/added_vocabulary.hpp"
#include "tokenizer/bpe_tokenizer_impl.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/gpt2_split.hpp"
#include "tokenizer/tokenizer_json.hpp"

namespace troupe::models {
namespace {

using tokenizer::AddedToken;
using tokenizer::AddedVocabulary;
using tokenizer::Segment;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t left_of(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t right_of(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

/// Counts the pre-tokenized words (raw bytes) of `texts`, special tokens cut out first.
std::unordered_map<std::string, int64_t> count_words(const std::vector<std::string>& texts,
                                                     const AddedVocabulary& specials, bool add_prefix_space) {
  std::unordered_map<std::string, int64_t> counts;
  std::vector<Segment> segments;
  std::vector<std::string_view> words;
  for (const auto& text : texts) {
    segments.clear();
    specials.split(text, /*normalized=*/false, segments);
    for (const auto& segment : segments) {
      if (segment.id >= 0 || segment.text.empty()) continue;
      std::string piece(segment.text);
      if (add_prefix_space && piece[0] != ' ') piece.insert(piece.begin(), ' ');
      words.clear();
      tokenizer::split_gpt2(piece, words);
      for (auto word : words) ++counts[std::string(word)];
    }
  }
  return counts;
}

/// The merge loop: words as symbol ids, pair counts kept up to date incrementally, and a
/// lazy max-heap ordered by (count, then smaller pair).
class MergeLearner {
 public:
  MergeLearner(std::vector<std::vector<int32_t>> words, std::vector<int64_t> counts)
      : words_(std::move(words)), counts_(std::move(counts)) {
    for (size_t w = 0; w < words_.size(); ++w) {
      for (size_t i = 0; i + 1 < words_[w].size(); ++i) add_pair(pair_key(words_[w][i], words_[w][i + 1]), counts_[w], w);
    }
    for (const auto& [key, count] : pair_counts_) heap_.push({count, key});
  }

  /// The next pair to merge, if one is seen at least `min_frequency` times.
  std::optional<uint64_t> best_pair(int64_t min_frequency) {
    while (!heap_.empty()) {
      const auto top = heap_.top();
      heap_.pop();
      const int64_t current = pair_counts_[top.key];
      if (current != top.count) {
        if (current > 0) heap_.push({current, top.key});
        continue;
      }
      if (current < min_frequency || current <= 0) return std::nullopt;
      return top.key;
    }
    return std::nullopt;
  }

  /// Replaces every (a, b) by `merged`, left to right, in the words that hold it.
  void apply(uint64_t key, int32_t merged) {
    const int32_t a = left_of(key);
    const int32_t b = right_of(key);
    std::unordered_set<uint64_t> touched;
    auto places = where_[key];
    for (size_t w : places) {
      auto& word = words_[w];
      const int64_t count = counts_[w];
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        if (word[i] != a || word[i + 1] != b) continue;
        if (i > 0) {
          add_pair(pair_key(word[i - 1], a), -count, w);
          add_pair(pair_key(word[i - 1], merged), count, w);
          touched.insert(pair_key(word[i - 1], merged));
        }
        if (i + 2 < word.size()) {
          add_pair(pair_key(b, word[i + 2]), -count, w);
          add_pair(pair_key(merged, word[i + 2]), count, w);
          touched.insert(pair_key(merged, word[i + 2]));
        }
        add_pair(key, -count, w);
        word[i] = merged;
        word.erase(word.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      }
    }
    pair_counts_[key] = 0;
    where_.erase(key);
    for (uint64_t changed : touched) {
      if (pair_counts_[changed] > 0) heap_.push({pair_counts_[changed], changed});
    }
  }

 private:
  struct Entry {
    int64_t count;
    uint64_t key;
    bool operator<(const Entry& o) const { return count != o.count ? count < o.count : key > o.key; }
  };
  void add_pair(uint64_t key, int64_t delta, size_t word) {
    pair_counts_[key] += delta;
    if (delta > 0) where_[key].insert(word);
  }

  std::vector<std::vector<int32_t>> words_;
  std::vector<int64_t> counts_;
  std::unordered_map<uint64_t, int64_t> pair_counts_;
  std::unordered_map<uint64_t, std::unordered_set<size_t>> where_;
  std::priority_queue<Entry> heap_;
};

}  // namespace

std::unique_ptr<BpeTokenizer> train_bpe_tokenizer(const std::vector<std::string>& texts,
                                                  const BpeTrainerOptions& options) {
  using nlohmann::json;
  const int64_t base = static_cast<int64_t>(options.special_tokens.size()) + 256;
  if (options.vocab_size < base) {
    throw Error("BPE trainer: vocab_size " + std::to_string(options.vocab_size) + " is below the " +
                std::to_string(base) + " special and byte symbols");
  }
  std::vector<std::string> tokens;
  std::unordered_map<std::string, int32_t> ids;
  std::vector<AddedToken> specials;
  for (const auto& content : options.special_tokens) {
    if (content.empty() || ids.count(content)) throw Error("BPE trainer: special token '" + content + "' is empty or repeated");
    const auto id = static_cast<int32_t>(tokens.size());
    specials.push_back({id, content, true, false, false, false, false});
    ids[content] = id;
    tokens.push_back(content);
  }
  for (const auto& symbol : tokenizer::byte_level_alphabet()) {
    if (ids.emplace(symbol, static_cast<int32_t>(tokens.size())).second) tokens.push_back(symbol);
  }
  std::vector<int32_t> byte_id(256);
  for (int b = 0; b < 256; ++b) byte_id[b] = ids.at(tokenizer::byte_level_symbol(static_cast<uint8_t>(b)));

  const AddedVocabulary special_vocabulary(specials, options.special_tokens);
  auto counts = count_words(texts, special_vocabulary, options.add_prefix_space);
  // Sorted words make the learner's input, and so its output, independent of hashing.
  std::map<std::string, int64_t> sorted(counts.begin(), counts.end());
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> word_counts;
  for (const auto& [word, count] : sorted) {
    std::vector<int32_t> symbols;
    for (char c : word) symbols.push_back(byte_id[static_cast<uint8_t>(c)]);
    words.push_back(std::move(symbols));
    word_counts.push_back(count);
  }

  MergeLearner learner(std::move(words), std::move(word_counts));
  json merges = json::array();
  while (static_cast<int64_t>(tokens.size()) < options.vocab_size) {
    auto best = learner.best_pair(std::max<int64_t>(options.min_frequency, 1));
    if (!best) break;
    const std::string& a = tokens[static_cast<size_t>(left_of(*best))];
    const std::string& b = tokens[static_cast<size_t>(right_of(*best))];
    merges.push_back({a, b});
    const std::string merged = a + b;
    auto [it, added] = ids.emplace(merged, static_cast<int32_t>(tokens.size()));
    if (added) tokens.push_back(merged);
    learner.apply(*best, it->second);
  }

  json vocab = json::object();
  for (size_t id = 0; id < tokens.size(); ++id) vocab[tokens[id]] = id;
  json added_tokens = json::array();
  for (const auto& token : specials) {
    added_tokens.push_back({{"id", token.id}, {"content", token.content}, {"single_word", false}, {"lstrip", false},
                            {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  std::map<std::string, std::string> names;
  auto name = [&](const char* key, const std::optional<std::string>& content, bool framing)
      -> std::optional<std::pair<std::string, int64_t>> {
    if (!content) {
      if (framing) throw Error(std::string("BPE trainer: add_") + key + " needs " + key);
      return std::nullopt;
    }
    auto it = ids.find(*content);
    if (it == ids.end() || it->second >= static_cast<int32_t>(specials.size())) {
      throw Error(std::string("BPE trainer: ") + key + " '" + *content + "' is not among special_tokens");
    }
    names[key] = *content;
    if (!framing) return std::nullopt;
    return std::make_pair(*content, static_cast<int64_t>(it->second));
  };
  const auto bos = name("bos_token", options.bos_token, options.add_bos_token);
  const auto eos = name("eos_token", options.eos_token, options.add_eos_token);
  name("pad_token", options.pad_token, false);
  name("unk_token", options.unk_token, false);

  json spec = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added_tokens},
      {"normalizer", nullptr},
      {"pre_tokenizer", tokenizer::make_byte_level(options.add_prefix_space)},
      {"post_processor", tokenizer::make_post_processor(bos, eos)},
      {"decoder", tokenizer::make_byte_level(true)},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", options.unk_token ? json(*options.unk_token) : json()},
        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
        {"byte_fallback", false}, {"ignore_merges", false}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)}}}};
  return tokenizer::make_bpe_tokenizer(std::move(spec), "trained tokenizer", std::move(names), {});
}

}  // namespace troupe::models
