#include "tokenizer/bpe_model.hpp"

#include <cstdio>
#include <mutex>
#include <queue>

#include <troupe/common/error.hpp>

#include "tokenizer/byte_level.hpp"
#include "tokenizer/utf8.hpp"

namespace troupe::models::tokenizer {

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, BpeModelOptions options,
                   const std::string& where)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  int32_t bound = 0;
  for (const auto& [token, id] : vocab_) {
    if (id < 0) throw Error(where + ": model.vocab: negative id " + std::to_string(id) + " for '" + token + "'");
    bound = std::max(bound, id + 1);
  }
  tokens_.resize(static_cast<size_t>(bound));
  has_token_.assign(static_cast<size_t>(bound), false);
  for (const auto& [token, id] : vocab_) {
    tokens_[static_cast<size_t>(id)] = token;
    has_token_[static_cast<size_t>(id)] = true;
  }
  const size_t prefix_length = options_.continuing_subword_prefix ? options_.continuing_subword_prefix->size() : 0;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab_.find(a);
    auto ib = vocab_.find(b);
    if (ia == vocab_.end() || ib == vocab_.end()) {
      throw Error(where + ": model.merges[" + std::to_string(rank) + "]: '" + (ia == vocab_.end() ? a : b) +
                  "' is not in model.vocab");
    }
    // As in `tokenizers`: the right part loses its continuing-subword prefix.
    std::string merged = a;
    if (prefix_length && b.compare(0, prefix_length, *options_.continuing_subword_prefix) == 0) {
      merged += b.substr(prefix_length);
    } else {
      merged += b;
    }
    auto im = vocab_.find(merged);
    if (im == vocab_.end()) {
      throw Error(where + ": model.merges[" + std::to_string(rank) + "]: merged token '" + merged +
                  "' is not in model.vocab");
    }
    merges_[pair_key(ia->second, ib->second)] = {static_cast<int32_t>(rank), im->second};
  }
  if (options_.unk_token) {
    auto it = vocab_.find(*options_.unk_token);
    if (it != vocab_.end()) unk_id_ = it->second;
  }
}

std::optional<int32_t> BpeModel::token_to_id(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int64_t id) const {
  if (id < 0 || id >= id_bound() || !has_token_[static_cast<size_t>(id)]) return nullptr;
  return &tokens_[static_cast<size_t>(id)];
}

void BpeModel::initial_symbols(const std::string& word, std::vector<int32_t>& ids,
                               std::vector<int32_t>& lengths) const {
  // Mirrors `BPE::merge_word` of `tokenizers`: prefix and suffix, byte fallback, unk fusing.
  std::optional<std::pair<int32_t, int32_t>> pending_unk;  // (id, byte length)
  std::string symbol;
  for (size_t pos = 0; pos < word.size();) {
    const auto cp = next_code_point(word, pos);
    const bool is_first = pos == 0;
    const bool is_last = pos + static_cast<size_t>(cp.length) >= word.size();
    symbol.clear();
    if (!is_first && options_.continuing_subword_prefix) symbol += *options_.continuing_subword_prefix;
    symbol.append(word, pos, static_cast<size_t>(cp.length));
    if (is_last && options_.end_of_word_suffix) symbol += *options_.end_of_word_suffix;
    const auto byte_length = cp.length;
    pos += static_cast<size_t>(cp.length);

    auto it = vocab_.find(symbol);
    if (it != vocab_.end()) {
      if (pending_unk) {
        ids.push_back(pending_unk->first);
        lengths.push_back(pending_unk->second);
        pending_unk.reset();
      }
      ids.push_back(it->second);
      lengths.push_back(byte_length);
      continue;
    }
    if (options_.byte_fallback) {
      std::vector<int32_t> byte_ids;
      for (unsigned char c : symbol) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", c);
        auto ib = vocab_.find(name);
        if (ib == vocab_.end()) break;
        byte_ids.push_back(ib->second);
      }
      if (byte_ids.size() == symbol.size()) {
        for (int32_t id : byte_ids) {
          ids.push_back(id);
          lengths.push_back(1);
        }
        continue;
      }
    }
    if (!unk_id_) continue;  // `tokenizers` drops a symbol it cannot represent
    if (pending_unk && options_.fuse_unk) {
      pending_unk->second += byte_length;
    } else {
      if (pending_unk) {
        ids.push_back(pending_unk->first);
        lengths.push_back(pending_unk->second);
      }
      pending_unk = std::make_pair(*unk_id_, byte_length);
    }
  }
  if (pending_unk) {
    ids.push_back(pending_unk->first);
    lengths.push_back(pending_unk->second);
  }
}

std::vector<int32_t> BpeModel::merge_word(const std::string& word) const {
  std::vector<int32_t> ids;
  std::vector<int32_t> lengths;
  initial_symbols(word, ids, lengths);
  const int32_t n = static_cast<int32_t>(ids.size());
  std::vector<int32_t> prev(ids.size());
  std::vector<int32_t> next(ids.size());
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  // (rank, position, new id); the lowest rank wins, then the leftmost position.
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = merges_.find(pair_key(ids[pos], ids[next[pos]]));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    if (lengths[top.pos] == 0 || next[top.pos] < 0) continue;
    const int32_t right = next[top.pos];
    auto it = merges_.find(pair_key(ids[top.pos], ids[right]));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
    ids[top.pos] = top.new_id;
    lengths[top.pos] += lengths[right];
    lengths[right] = 0;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    push_pair(prev[top.pos]);
    push_pair(top.pos);
  }
  std::vector<int32_t> out;
  for (int32_t i = 0; i < n; ++i) {
    if (lengths[i] != 0) out.push_back(ids[i]);
  }
  return out;
}

void BpeModel::tokenize_bytes(std::string_view word, std::vector<int64_t>& out) const {
  if (word.empty()) return;
  thread_local std::string key;
  key.assign(word.data(), word.size());
  const bool cacheable = word.size() < cache_max_word_bytes_;
  if (cacheable && !options_.ignore_merges) {
    std::shared_lock lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const std::string symbols = to_byte_level(word);
  if (options_.ignore_merges) {
    // As `tokenizers`: a word that is itself in the vocabulary is one token.
    auto it = vocab_.find(symbols);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
    if (cacheable) {
      std::shared_lock lock(cache_mutex_);
      auto hit = cache_.find(key);
      if (hit != cache_.end()) {
        out.insert(out.end(), hit->second.begin(), hit->second.end());
        return;
      }
    }
  }
  auto ids = merge_word(symbols);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() < cache_capacity_) cache_.emplace(key, std::move(ids));
  }
}

}  // namespace troupe::models::tokenizer
