#include "tokenizer/normalizer.hpp"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <troupe/common/error.hpp>

#include "tokenizer/utf8.hpp"

namespace troupe::models::tokenizer {
namespace {

const icu::Normalizer2& instance(NormalForm form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = nullptr;
  switch (form) {
    case NormalForm::nfc: normalizer = icu::Normalizer2::getNFCInstance(status); break;
    case NormalForm::nfkc: normalizer = icu::Normalizer2::getNFKCInstance(status); break;
    case NormalForm::nfd: normalizer = icu::Normalizer2::getNFDInstance(status); break;
    case NormalForm::nfkd: normalizer = icu::Normalizer2::getNFKDInstance(status); break;
  }
  if (U_FAILURE(status) || !normalizer) throw Error(std::string("ICU normalizer unavailable: ") + u_errorName(status));
  return *normalizer;
}

std::string normalize_valid(std::string_view text, NormalForm form) {
  UErrorCode status = U_ZERO_ERROR;
  auto source = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  icu::UnicodeString result = instance(form).normalize(source, status);
  if (U_FAILURE(status)) throw Error(std::string("ICU normalization failed: ") + u_errorName(status));
  std::string out;
  result.toUTF8String(out);
  return out;
}

}  // namespace

std::string Normalizer::apply(std::string_view text) const {
  std::string current(text);
  for (NormalForm form : forms_) {
    std::string next;
    size_t run_start = 0;
    for (size_t pos = 0; pos <= current.size();) {
      const bool at_end = pos == current.size();
      const auto cp = at_end ? CodePoint{0, 0} : next_code_point(current, pos);
      if (at_end || cp.value < 0) {
        if (pos > run_start) next += normalize_valid(std::string_view(current).substr(run_start, pos - run_start), form);
        if (at_end) break;
        next += current[pos];
        run_start = ++pos;
        continue;
      }
      pos += static_cast<size_t>(cp.length);
    }
    current = std::move(next);
  }
  return current;
}

}  // namespace troupe::models::tokenizer
