#pragma once
/// UTF-8 stepping that never fails: an invalid byte counts as one code point of its
/// own, so every tokenizer stage can treat arbitrary bytes without crashing.
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::models::tokenizer {

/// The code point at `text[pos]` and its length in bytes; -1 and length 1 when the
/// bytes there are not valid UTF-8 (truncated, overlong, surrogate, out of range).
struct CodePoint {
  int32_t value;
  int length;
};

inline CodePoint next_code_point(std::string_view text, size_t pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  const size_t left = text.size() - pos;
  const unsigned char c = s[0];
  if (c < 0x80) return {c, 1};
  int length = 0;
  int32_t value = 0;
  int32_t min_value = 0;
  if ((c & 0xE0) == 0xC0) {
    length = 2, value = c & 0x1F, min_value = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    length = 3, value = c & 0x0F, min_value = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    length = 4, value = c & 0x07, min_value = 0x10000;
  } else {
    return {-1, 1};
  }
  if (left < static_cast<size_t>(length)) return {-1, 1};
  for (int i = 1; i < length; ++i) {
    if ((s[i] & 0xC0) != 0x80) return {-1, 1};
    value = (value << 6) | (s[i] & 0x3F);
  }
  if (value < min_value || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return {-1, 1};
  return {value, length};
}

inline void append_utf8(std::string& out, int32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// True when every byte of `text` belongs to a valid UTF-8 sequence.
inline bool is_valid_utf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    auto cp = next_code_point(text, pos);
    if (cp.value < 0) return false;
    pos += static_cast<size_t>(cp.length);
  }
  return true;
}

}  // namespace troupe::models::tokenizer
