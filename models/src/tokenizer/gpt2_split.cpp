#include "tokenizer/gpt2_split.hpp"

#include "tokenizer/char_classes.hpp"

namespace troupe::models::tokenizer {
namespace {

using Chars = std::vector<ClassifiedChar>;

/// Length of `'s|'t|'re|'ve|'m|'ll|'d` at `i` (0 if none); `fold` matches either case.
size_t contraction_at(const Chars& chars, size_t i, bool fold) {
  const size_t n = chars.size();
  if (chars[i].value != '\'' || i + 1 >= n) return 0;
  auto lower = [&](int32_t c) {
    if (!fold) return c;
    if (c == 0x17F) return int32_t{'s'};  // LATIN SMALL LETTER LONG S case-folds to s
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
  };
  const int32_t a = lower(chars[i + 1].value);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= n) return 0;
  const int32_t b = lower(chars[i + 2].value);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

size_t run_end(const Chars& chars, size_t j, CharClass cls) {
  while (j < chars.size() && chars[j].cls == cls) ++j;
  return j;
}

bool is_newline(const ClassifiedChar& c) { return c.value == '\r' || c.value == '\n'; }

/// `\s+(?!\S)|\s+` at a space: a run keeps its last space for the word after it.
size_t trailing_space_end(const Chars& chars, size_t i) {
  const size_t end = run_end(chars, i, CharClass::space);
  return (end == chars.size() || end - i == 1) ? end : end - 1;
}

class Emitter {
 public:
  Emitter(std::string_view text, const Chars& chars, std::vector<std::string_view>& pieces)
      : text_(text), chars_(chars), pieces_(pieces) {}
  void operator()(size_t begin, size_t end) const { pieces_.push_back(text_.substr(offset(begin), offset(end) - offset(begin))); }

 private:
  uint32_t offset(size_t i) const { return i < chars_.size() ? chars_[i].offset : static_cast<uint32_t>(text_.size()); }
  std::string_view text_;
  const Chars& chars_;
  std::vector<std::string_view>& pieces_;
};

}  // namespace

void split_gpt2(std::string_view text, std::vector<std::string_view>& pieces) {
  thread_local Chars chars;
  classify_chars(text, chars);
  const Emitter emit(text, chars, pieces);
  const size_t n = chars.size();
  for (size_t i = 0; i < n;) {
    size_t end = contraction_at(chars, i, /*fold=*/false);
    if (end) {
      end += i;
    } else {
      // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional single space, then a run.
      size_t start = i;
      if (chars[i].value == ' ' && i + 1 < n && chars[i + 1].cls != CharClass::space) start = i + 1;
      end = chars[start].cls != CharClass::space ? run_end(chars, start, chars[start].cls) : trailing_space_end(chars, i);
    }
    emit(i, end);
    i = end;
  }
}

void split_llama3(std::string_view text, std::vector<std::string_view>& pieces) {
  thread_local Chars chars;
  classify_chars(text, chars);
  const Emitter emit(text, chars, pieces);
  const size_t n = chars.size();
  for (size_t i = 0; i < n;) {
    const auto& c = chars[i];
    size_t end = contraction_at(chars, i, /*fold=*/true);
    if (end) {
      end += i;
    } else if (c.cls == CharClass::letter) {
      end = run_end(chars, i, CharClass::letter);  // `[^\r\n\p{L}\p{N}]?\p{L}+` without the prefix
    } else if (c.cls != CharClass::number && !is_newline(c) && i + 1 < n && chars[i + 1].cls == CharClass::letter) {
      end = run_end(chars, i + 1, CharClass::letter);  // one leading space or symbol, then letters
    } else if (c.cls == CharClass::number) {
      end = i + 1;  // `\p{N}{1,3}`
      while (end < n && end < i + 3 && chars[end].cls == CharClass::number) ++end;
    } else if (c.cls == CharClass::other || (c.value == ' ' && i + 1 < n && chars[i + 1].cls == CharClass::other)) {
      // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
      end = run_end(chars, c.cls == CharClass::other ? i : i + 1, CharClass::other);
      while (end < n && is_newline(chars[end])) ++end;
    } else {
      // A space: `\s*[\r\n]+` ends at the run's last newline; else `\s+(?!\S)|\s+`.
      const size_t run = run_end(chars, i, CharClass::space);
      size_t last_newline = run;
      for (size_t j = i; j < run; ++j) {
        if (is_newline(chars[j])) last_newline = j;
      }
      end = last_newline < run ? last_newline + 1 : trailing_space_end(chars, i);
    }
    emit(i, end);
    i = end;
  }
}

}  // namespace troupe::models::tokenizer
