#pragma once
/// Unicode normalization steps of `tokenizer.json` (NFC, NFKC, NFD, NFKD) through ICU.
#include <string>
#include <string_view>
#include <vector>

namespace troupe::models::tokenizer {

enum class NormalForm { nfc, nfkc, nfd, nfkd };

class Normalizer {
 public:
  void add(NormalForm form) { forms_.push_back(form); }
  bool empty() const { return forms_.empty(); }
  /// Normalizes the valid UTF-8 runs of `text`; invalid bytes pass through untouched so
  /// they still reach the byte-level model as bytes.
  std::string apply(std::string_view text) const;

 private:
  std::vector<NormalForm> forms_;
};

}  // namespace troupe::models::tokenizer
