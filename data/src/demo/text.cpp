/// Text helpers of the demo task (ASCII only: the demo's vocabulary is ASCII).
#include "demo_text.hpp"

#include <cctype>

namespace troupe::data::demo {
namespace {

bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

bool consume_prefix(std::string_view& text, std::string_view prefix) {
  if (text.substr(0, prefix.size()) != prefix) return false;
  text.remove_prefix(prefix.size());
  return true;
}

bool consume_suffix(std::string_view& text, std::string_view suffix) {
  if (text.size() < suffix.size() || text.substr(text.size() - suffix.size()) != suffix) return false;
  text.remove_suffix(suffix.size());
  return true;
}

std::vector<std::string_view> split_spaces(std::string_view text) {
  std::vector<std::string_view> pieces;
  size_t start = 0;
  for (;;) {
    const auto space = text.find(' ', start);
    pieces.push_back(text.substr(start, space == std::string_view::npos ? std::string_view::npos : space - start));
    if (space == std::string_view::npos) return pieces;
    start = space + 1;
  }
}

std::optional<int> parse_int(std::string_view text) {
  bool negative = consume_prefix(text, "-");
  if (text.empty() || text.size() > 6) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return negative ? -value : value;
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    const bool negative_number = text[i] == '-' && i + 1 < text.size() && is_digit(text[i + 1]) &&
                                 (i == 0 || !is_alnum(text[i - 1]));
    if (!negative_number && !is_alnum(text[i])) {
      ++i;
      continue;
    }
    size_t end = i + 1;
    while (end < text.size() && is_alnum(text[end])) ++end;
    words.emplace_back(text.substr(i, end - i));
    i = end;
  }
  return words;
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string to_upper(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string fill_template(std::string_view pattern, std::string_view answer) {
  std::string out;
  const bool ends_sentence = !answer.empty() && (answer.back() == '!' || answer.back() == '?');
  size_t i = 0;
  while (i < pattern.size()) {
    if (pattern.substr(i, 3) == "{a}") {
      out += answer;
      i += 3;
      if (ends_sentence && i < pattern.size() && (pattern[i] == '.' || pattern[i] == ',')) ++i;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

std::string join_numbers(const std::vector<int>& numbers) {
  std::string out;
  for (size_t i = 0; i < numbers.size(); ++i) {
    if (i) out += ' ';
    out += std::to_string(numbers[i]);
  }
  return out;
}

}  // namespace troupe::data::demo
