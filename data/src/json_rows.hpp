#pragma once
/// Rows of a JSON-lines file or a JSON array file, each with the line it starts on.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace troupe::data::detail {

struct JsonRow {
  int64_t line = 0;                     ///< 1-based line where the row starts
  std::optional<nlohmann::json> value;  ///< absent when the row is malformed
  std::string error;                    ///< why it is malformed
};

/// Reads every row of `file`: a JSON array of objects (first non-blank character
/// '[') or JSON lines (blank lines ignored). Malformed rows come back with `error`
/// set so the caller can count or report them; an empty file, or an array that
/// never closes, throws troupe::Error naming the file.
std::vector<JsonRow> read_json_rows(const std::filesystem::path& file);

}  // namespace troupe::data::detail
