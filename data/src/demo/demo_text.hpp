#pragma once
/// Small text helpers shared by the demo task's parser, scorer and generator.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::data::demo {

std::string_view trim(std::string_view text);

/// Removes `prefix` from the front of `text`; false (text unchanged) if absent.
bool consume_prefix(std::string_view& text, std::string_view prefix);
bool consume_suffix(std::string_view& text, std::string_view suffix);

/// Splits on single spaces; empty pieces (double spaces) are kept so callers reject them.
std::vector<std::string_view> split_spaces(std::string_view text);

/// A decimal integer with an optional leading '-', at most 6 digits.
std::optional<int> parse_int(std::string_view text);

/// Words of a response: runs of ASCII letters and digits; a '-' directly before digits
/// at the start of a word keeps a negative number whole. Punctuation separates words.
std::vector<std::string> split_words(std::string_view text);

std::string to_lower(std::string_view text);
std::string to_upper(std::string_view text);

/// `pattern` with every "{a}" replaced by `answer`; a "." or "," right after an answer
/// that ends in "!" or "?" is dropped, so templates read well around full sentences.
std::string fill_template(std::string_view pattern, std::string_view answer);

/// Numbers joined by single spaces.
std::string join_numbers(const std::vector<int>& numbers);

}  // namespace troupe::data::demo
