#pragma once
/// The character classes the pre-tokenizer split patterns use (`\p{L}`, `\p{N}`, `\s`),
/// decoded once per piece so the hand-written matchers can look ahead cheaply.
#include <cstdint>
#include <string_view>
#include <vector>

namespace troupe::models::tokenizer {

enum class CharClass : uint8_t { letter, number, space, other };

/// One code point of a piece: its byte offset, value (-1 for an invalid byte) and class.
struct ClassifiedChar {
  uint32_t offset;
  int32_t value;
  CharClass cls;
};

/// `\s` is Oniguruma's (Hugging Face's regex engine) Unicode definition:
/// U+0009..U+000D, U+0085 and the Zs, Zl, Zp categories. Invalid bytes are `other`.
CharClass classify(int32_t cp);

/// The code points of `text`, classified.
void classify_chars(std::string_view text, std::vector<ClassifiedChar>& chars);

}  // namespace troupe::models::tokenizer
