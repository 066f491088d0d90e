#pragma once
/// The error for a well-formed tokenizer file that asks for something troupe does not
/// implement; load_tokenizer() falls back to `tokenizer.model` on it.
#include <string>

#include <troupe/common/error.hpp>

namespace troupe::models::tokenizer {

class UnsupportedTokenizer : public Error {
 public:
  explicit UnsupportedTokenizer(const std::string& what) : Error(what) {}
};

}  // namespace troupe::models::tokenizer
