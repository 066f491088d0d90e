#include "tokenizer/tokenizer_config.hpp"

#include <algorithm>

#include "tokenizer/json_fields.hpp"

namespace troupe::models::tokenizer {
namespace {

using nlohmann::json;

/// A special token is written as "</s>" or as an AddedToken object {"content": "</s>", ...}.
std::optional<std::string> token_content(const json& value, const JsonPlace& place) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object()) return get_string(value, "content", place);
  place.fail("expected a string or an object with \"content\"");
}

void read_names(const json& spec, const JsonPlace& place, TokenizerConfig& config) {
  if (!spec.is_object()) place.fail("expected an object");
  for (const auto& key : special_token_keys()) {
    auto it = spec.find(key);
    if (it == spec.end()) continue;
    if (auto content = token_content(*it, place / key)) {
      config.special_names[key] = *content;
    } else {
      config.special_names.erase(key);
    }
  }
  if (const auto* extra = find_field(spec, "additional_special_tokens")) {
    if (!extra->is_array()) (place / "additional_special_tokens").fail("expected an array");
    config.additional_special_tokens.clear();
    for (size_t i = 0; i < extra->size(); ++i) {
      if (auto content = token_content((*extra)[i], (place / "additional_special_tokens").at(i))) {
        config.additional_special_tokens.push_back(*content);
      }
    }
  }
}

std::optional<bool> optional_bool(const json& spec, const std::string& key, const JsonPlace& place) {
  const auto* value = find_field(spec, key);
  if (!value) return std::nullopt;
  if (!value->is_boolean()) (place / key).fail("expected true or false");
  return value->get<bool>();
}

void read_added_tokens_decoder(const json& spec, const JsonPlace& place, TokenizerConfig& config) {
  const auto* decoder = find_field(spec, "added_tokens_decoder");
  if (!decoder) return;
  if (!decoder->is_object()) (place / "added_tokens_decoder").fail("expected an object");
  for (const auto& [key, item] : decoder->items()) {
    const auto item_place = place / "added_tokens_decoder" / key;
    AddedToken token;
    try {
      token.id = std::stoi(key);
    } catch (const std::exception&) {
      item_place.fail("the key is not an integer id");
    }
    token.content = get_string(item, "content", item_place);
    token.special = get_bool(item, "special", false, item_place);
    token.lstrip = get_bool(item, "lstrip", false, item_place);
    token.rstrip = get_bool(item, "rstrip", false, item_place);
    token.single_word = get_bool(item, "single_word", false, item_place);
    token.normalized = get_bool(item, "normalized", !token.special, item_place);
    config.added_tokens_decoder.push_back(std::move(token));
  }
  std::sort(config.added_tokens_decoder.begin(), config.added_tokens_decoder.end(),
            [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
}

}  // namespace

TokenizerConfig read_tokenizer_config(const std::filesystem::path& dir) {
  TokenizerConfig config;
  const auto config_file = dir / "tokenizer_config.json";
  if (std::filesystem::exists(config_file)) {
    const auto spec = read_json_file(config_file);
    const JsonPlace place{config_file.string(), ""};
    config.raw = spec;
    read_names(spec, place, config);
    config.add_bos_token = optional_bool(spec, "add_bos_token", place);
    config.add_eos_token = optional_bool(spec, "add_eos_token", place);
    config.add_prefix_space = optional_bool(spec, "add_prefix_space", place);
    read_added_tokens_decoder(spec, place, config);
  }
  const auto map_file = dir / "special_tokens_map.json";
  if (std::filesystem::exists(map_file)) {
    read_names(read_json_file(map_file), JsonPlace{map_file.string(), ""}, config);
  }
  const auto added_file = dir / "added_tokens.json";
  if (std::filesystem::exists(added_file)) {
    const auto spec = read_json_file(added_file);
    const JsonPlace place{added_file.string(), ""};
    if (!spec.is_object()) throw Error(added_file.string() + ": expected an object of token: id");
    for (const auto& [token, id] : spec.items()) {
      if (!id.is_number_integer()) (place / token).fail("expected an integer id");
      config.added_tokens_json.emplace_back(token, id.get<int32_t>());
    }
  }
  return config;
}

}  // namespace troupe::models::tokenizer
