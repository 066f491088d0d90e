#include "tokenizer/gpt2_split.hpp"

#include <cstdint>

#include <unicode/uchar.h>

#include "tokenizer/utf8.hpp"

namespace troupe::models::tokenizer {
namespace {

enum class CharClass : uint8_t { letter, number, space, other };

/// `\s` as Oniguruma (Hugging Face's regex engine) defines it for Unicode:
/// U+0009..U+000D, U+0085 and the Zs, Zl, Zp categories.
CharClass classify(int32_t cp) {
  if (cp < 0) return CharClass::other;
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::letter;
    if (cp >= '0' && cp <= '9') return CharClass::number;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CharClass::space;
    return CharClass::other;
  }
  if (cp == 0x85) return CharClass::space;
  const uint32_t mask = U_GET_GC_MASK(cp);
  if (mask & U_GC_L_MASK) return CharClass::letter;
  if (mask & U_GC_N_MASK) return CharClass::number;
  if (mask & (U_GC_ZS_MASK | U_GC_ZL_MASK | U_GC_ZP_MASK)) return CharClass::space;
  return CharClass::other;
}

struct Char {
  uint32_t offset;
  int32_t value;
  CharClass cls;
};

bool is_contraction(const std::vector<Char>& chars, size_t i, size_t& length) {
  const size_t n = chars.size();
  if (chars[i].value != '\'' || i + 1 >= n) return false;
  const int32_t a = chars[i + 1].value;
  if (a == 's' || a == 't' || a == 'm' || a == 'd') {
    length = 2;
    return true;
  }
  if (i + 2 >= n) return false;
  const int32_t b = chars[i + 2].value;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
    length = 3;
    return true;
  }
  return false;
}

}  // namespace

void split_gpt2(std::string_view text, std::vector<std::string_view>& pieces) {
  std::vector<Char> chars;
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    auto cp = next_code_point(text, pos);
    chars.push_back({static_cast<uint32_t>(pos), cp.value, classify(cp.value)});
    pos += static_cast<size_t>(cp.length);
  }
  const size_t n = chars.size();
  auto offset = [&](size_t i) { return i < n ? chars[i].offset : static_cast<uint32_t>(text.size()); };
  auto emit = [&](size_t begin, size_t end) { pieces.push_back(text.substr(offset(begin), offset(end) - offset(begin))); };
  auto run_end = [&](size_t j, CharClass cls) {
    while (j < n && chars[j].cls == cls) ++j;
    return j;
  };

  for (size_t i = 0; i < n;) {
    size_t length = 0;
    if (is_contraction(chars, i, length)) {
      emit(i, i + length);
      i += length;
      continue;
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional single space, then a run.
    size_t start = i;
    if (chars[i].value == ' ' && i + 1 < n && chars[i + 1].cls != CharClass::space) start = i + 1;
    if (chars[start].cls != CharClass::space) {
      const size_t end = run_end(start, chars[start].cls);
      emit(i, end);
      i = end;
      continue;
    }
    // `\s+(?!\S)` leaves the last space of a run to the word after it; `\s+` otherwise.
    const size_t end = run_end(i, CharClass::space);
    const size_t stop = (end == n || end - i == 1) ? end : end - 1;
    emit(i, stop);
    i = stop;
  }
}

}  // namespace troupe::models::tokenizer
