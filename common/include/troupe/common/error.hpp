#pragma once
/// Errors thrown by troupe's library code.
#include <stdexcept>
#include <string>

namespace troupe {

/// The one exception type of troupe: the message says what was wrong and where
/// (file, line, field, flag), so the CLI can print it as one line.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace troupe
