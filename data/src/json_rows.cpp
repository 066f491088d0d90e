/// JSON-lines and JSON-array reading with line numbers for error messages.
#include "json_rows.hpp"

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

namespace troupe::data::detail {
namespace {

JsonRow parse_row(const std::string& text, int64_t line) {
  JsonRow row;
  row.line = line;
  try {
    row.value = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] parse error at line 1, column 5: ".
    if (auto at = what.find(": "); at != std::string::npos) what = what.substr(at + 2);
    row.error = "malformed JSON (" + what + ")";
  }
  return row;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::vector<JsonRow> read_lines(const std::string& text) {
  std::vector<JsonRow> rows;
  size_t start = 0;
  int64_t line = 1;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view view(text.data() + start, end - start);
    bool blank = true;
    for (char c : view) blank = blank && is_space(c);
    if (!blank) rows.push_back(parse_row(std::string(view), line));
    start = end + 1;
    ++line;
  }
  return rows;
}

/// Splits a top-level JSON array into its elements by scanning brackets and strings,
/// so each element keeps the line it starts on.
std::vector<JsonRow> read_array(const std::string& text, size_t open, const std::filesystem::path& file) {
  std::vector<JsonRow> rows;
  int64_t line = 1;
  for (size_t i = 0; i < open; ++i) line += text[i] == '\n';
  int depth = 0;
  bool in_string = false, escaped = false;
  size_t element_start = std::string::npos;
  int64_t element_line = line;
  auto finish = [&](size_t end) {
    if (element_start == std::string::npos) return;
    rows.push_back(parse_row(text.substr(element_start, end - element_start), element_line));
    element_start = std::string::npos;
  };
  for (size_t i = open; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') ++line;
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (depth == 1 && element_start == std::string::npos && !is_space(c) && c != ',' && c != ']') {
      element_start = i;
      element_line = line;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      --depth;
      if (depth == 0) {
        finish(i);
        for (size_t j = i + 1; j < text.size(); ++j)
          if (!is_space(text[j]))
            throw Error(file.string() + ":" + std::to_string(line) + ": malformed JSON: text after the closing ']' of the array");
        return rows;
      }
    } else if (c == ',' && depth == 1) {
      finish(i);
    }
  }
  throw Error(file.string() + ":" + std::to_string(line) + ": malformed JSON: the array opened on line " +
              std::to_string(rows.empty() ? element_line : rows.front().line) + " never closes (expected ']')");
}

}  // namespace

std::vector<JsonRow> read_json_rows(const std::filesystem::path& file) {
  const std::string text = read_file(file);
  size_t first = 0;
  while (first < text.size() && is_space(text[first])) ++first;
  if (first == text.size())
    throw Error(file.string() + ": empty file (expected JSON lines or a JSON array of objects)");
  auto rows = text[first] == '[' ? read_array(text, first, file) : read_lines(text);
  if (rows.empty()) throw Error(file.string() + ": no rows (expected JSON lines or a JSON array of objects)");
  return rows;
}

}  // namespace troupe::data::detail
