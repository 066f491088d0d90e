#pragma once
/// What `transformers` keeps beside the tokenizer files: special-token names
/// (`tokenizer_config.json`, `special_tokens_map.json`), added tokens
/// (`added_tokens_decoder`, `added_tokens.json`) and a few encoding flags.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/added_vocabulary.hpp"

namespace troupe::models::tokenizer {

/// The keys `transformers` treats as named special tokens.
inline const std::vector<std::string>& special_token_keys() {
  static const std::vector<std::string> keys{"bos_token", "eos_token", "unk_token", "pad_token",
                                             "sep_token", "cls_token", "mask_token"};
  return keys;
}

struct TokenizerConfig {
  /// "bos_token" -> "</s>" and so on; special_tokens_map.json overrides tokenizer_config.json.
  std::map<std::string, std::string> special_names;
  std::vector<std::string> additional_special_tokens;
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  std::optional<bool> add_prefix_space;
  std::vector<AddedToken> added_tokens_decoder;
  std::vector<std::pair<std::string, int32_t>> added_tokens_json;
  /// tokenizer_config.json as read (null when absent): save() keeps its other fields,
  /// such as chat_template and model_max_length.
  nlohmann::json raw;

  std::optional<std::string> name(const std::string& key) const {
    auto it = special_names.find(key);
    if (it == special_names.end()) return std::nullopt;
    return it->second;
  }
};

/// Reads whichever of the three files exist in `dir`; a malformed one is an error naming it.
TokenizerConfig read_tokenizer_config(const std::filesystem::path& dir);

}  // namespace troupe::models::tokenizer
