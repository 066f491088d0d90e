#pragma once
/// Typed reads of JSON fields whose errors name the file and the field path, so a bad
/// `tokenizer.json` is reported as "file: field 'model.vocab': expected an object".
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

namespace troupe::models::tokenizer {

/// Where a JSON value lives: the file and the dotted path inside it.
struct JsonPlace {
  std::string file;
  std::string path;

  JsonPlace operator/(const std::string& key) const { return {file, path.empty() ? key : path + "." + key}; }
  JsonPlace at(size_t index) const { return {file, path + "[" + std::to_string(index) + "]"}; }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(file + ": field '" + path + "': " + what);
  }
};

/// Parses a whole JSON file; a syntax error names the file.
inline nlohmann::json read_json_file(const std::filesystem::path& file) {
  const std::string text = read_file(file);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": malformed JSON: " + e.what());
  }
}

inline const nlohmann::json* find_field(const nlohmann::json& object, const std::string& key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

inline bool get_bool(const nlohmann::json& object, const std::string& key, bool fallback, const JsonPlace& place) {
  const auto* value = find_field(object, key);
  if (!value) return fallback;
  if (!value->is_boolean()) (place / key).fail("expected true or false");
  return value->get<bool>();
}

inline std::optional<std::string> get_optional_string(const nlohmann::json& object, const std::string& key,
                                                      const JsonPlace& place) {
  const auto* value = find_field(object, key);
  if (!value) return std::nullopt;
  if (!value->is_string()) (place / key).fail("expected a string");
  return value->get<std::string>();
}

inline std::string get_string(const nlohmann::json& object, const std::string& key, const JsonPlace& place) {
  auto value = get_optional_string(object, key, place);
  if (!value) (place / key).fail("missing");
  return *value;
}

inline int64_t get_int(const nlohmann::json& object, const std::string& key, const JsonPlace& place) {
  const auto* value = find_field(object, key);
  if (!value) (place / key).fail("missing");
  if (!value->is_number_integer()) (place / key).fail("expected an integer");
  return value->get<int64_t>();
}

}  // namespace troupe::models::tokenizer
