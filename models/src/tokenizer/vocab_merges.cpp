#include <set>

#include <troupe/models/bpe_tokenizer.hpp>

#include "tokenizer/bpe_tokenizer_impl.hpp"
#include "tokenizer/json_fields.hpp"
#include "tokenizer/tokenizer_config.hpp"
#include "tokenizer/tokenizer_json.hpp"

namespace troupe::models {
namespace {

using nlohmann::json;

/// merges.txt: an optional "#version" line, then "a b" per line.
json read_merges(const std::filesystem::path& file) {
  const std::string text = read_file(file);
  json merges = json::array();
  size_t line_number = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_number == 1 && line.rfind("#version", 0) == 0)) continue;
    const auto space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
      throw Error(file.string() + ":" + std::to_string(line_number) + ": expected \"a b\", got \"" + line + "\"");
    }
    merges.push_back({line.substr(0, space), line.substr(space + 1)});
  }
  return merges;
}

json added_token_json(const tokenizer::AddedToken& token) {
  return {{"id", token.id},         {"content", token.content},       {"single_word", token.single_word},
          {"lstrip", token.lstrip}, {"rstrip", token.rstrip},         {"normalized", token.normalized},
          {"special", token.special}};
}

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_vocab_merges(const std::filesystem::path& dir) {
  const auto vocab_file = dir / "vocab.json";
  json vocab = tokenizer::read_json_file(vocab_file);
  if (!vocab.is_object()) throw Error(vocab_file.string() + ": expected an object of token: id");
  json merges = read_merges(dir / "merges.txt");
  auto config = tokenizer::read_tokenizer_config(dir);

  // GPT2Tokenizer's defaults when the config names no bos/eos/unk (GPT-2's own files).
  if (vocab.contains(tokenizer::gpt2_end_of_text)) {
    for (const char* key : {"bos_token", "eos_token", "unk_token"}) config.special_names.emplace(key, tokenizer::gpt2_end_of_text);
  }
  auto lookup = [&](const std::string& content) -> std::optional<int32_t> {
    for (const auto& [token, id] : config.added_tokens_json) {
      if (token == content) return id;
    }
    auto it = vocab.find(content);
    if (it != vocab.end() && it->is_number_integer()) return it->get<int32_t>();
    return std::nullopt;
  };

  // transformers' order: added_tokens_decoder, then named special tokens, then added_tokens.json.
  std::vector<tokenizer::AddedToken> added = config.added_tokens_decoder;
  std::set<std::string> seen;
  for (const auto& token : added) seen.insert(token.content);
  std::vector<std::string> specials = config.additional_special_tokens;
  for (const auto& [key, content] : config.special_names) specials.push_back(content);
  for (const auto& content : specials) {
    auto id = lookup(content);
    if (!id || !seen.insert(content).second) continue;
    added.push_back({*id, content, true, false, false, false, false});
  }
  for (const auto& [content, id] : config.added_tokens_json) {
    if (seen.insert(content).second) added.push_back({id, content, false, false, false, false, true});
  }
  std::sort(added.begin(), added.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  json added_tokens = json::array();
  for (const auto& token : added) added_tokens.push_back(added_token_json(token));

  auto named = [&](const char* key, bool wanted) -> std::optional<std::pair<std::string, int64_t>> {
    auto content = config.name(key);
    if (!wanted || !content) return std::nullopt;
    auto id = lookup(*content);
    if (!id) throw Error((dir / "tokenizer_config.json").string() + ": " + key + " '" + *content + "' is not in vocab.json");
    return std::make_pair(*content, static_cast<int64_t>(*id));
  };
  json spec = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added_tokens},
      {"normalizer", nullptr},
      {"pre_tokenizer", tokenizer::make_byte_level(config.add_prefix_space.value_or(false))},
      {"post_processor", tokenizer::make_post_processor(named("bos_token", config.add_bos_token.value_or(false)),
                                                        named("eos_token", config.add_eos_token.value_or(false)))},
      {"decoder", tokenizer::make_byte_level(true)},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", std::move(vocab)}, {"merges", std::move(merges)}}}};
  return tokenizer::make_bpe_tokenizer(std::move(spec), (dir / "vocab.json").string(), std::move(config.special_names),
                                       std::move(config.additional_special_tokens), std::move(config.raw));
}

}  // namespace troupe::models
