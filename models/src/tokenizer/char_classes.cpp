#include "tokenizer/char_classes.hpp"

#include <unicode/uchar.h>

#include "tokenizer/utf8.hpp"

namespace troupe::models::tokenizer {

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

void classify_chars(std::string_view text, std::vector<ClassifiedChar>& chars) {
  chars.clear();
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const auto cp = next_code_point(text, pos);
    chars.push_back({static_cast<uint32_t>(pos), cp.value, classify(cp.value)});
    pos += static_cast<size_t>(cp.length);
  }
}

}  // namespace troupe::models::tokenizer
