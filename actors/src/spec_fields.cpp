#include "spec_fields.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include <troupe/common/error.hpp>

namespace troupe::actors {

const std::string* SpecReader::find(const std::string& key) const {
  auto found = spec_.options.find(key);
  return found == spec_.options.end() ? nullptr : &found->second;
}

std::string SpecReader::nonempty(const std::string& key, const std::string& value) const {
  if (value.empty()) fail(key, "is missing");
  return value;
}

std::string SpecReader::where(const std::string& key) const {
  return describe(spec_.id) + " (factory " + spec_.factory + "): option \"" + key + "\"";
}

void SpecReader::fail(const std::string& key, const std::string& why) const { throw Error(where(key) + " " + why); }

namespace spec_text {
namespace {

/// `text` as an Integer; none when it is not one or does not fit.
template <class Integer>
std::optional<Integer> parse_whole(const std::string& text) {
  // strtoll/strtoull skip leading spaces and strtoull reads "-1" as 2^64 - 1: refuse both.
  if (text.empty() || std::isspace(static_cast<unsigned char>(text.front()))) return std::nullopt;
  if (std::is_unsigned_v<Integer> && text.front() == '-') return std::nullopt;
  errno = 0;
  char* end = nullptr;
  if constexpr (std::is_signed_v<Integer>) {
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (errno == 0 && *end == '\0' && value >= std::numeric_limits<Integer>::min() &&
        value <= std::numeric_limits<Integer>::max())
      return static_cast<Integer>(value);
  } else {
    const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (errno == 0 && *end == '\0' && value <= std::numeric_limits<Integer>::max()) return static_cast<Integer>(value);
  }
  return std::nullopt;
}

template <class Integer>
Integer whole_number(const std::string& text, const SpecReader& reader, const std::string& key) {
  if (const auto value = parse_whole<Integer>(text)) return *value;
  reader.fail(key, "\"" + text + "\" is not a whole number" + (std::is_unsigned_v<Integer> ? " (0 or more)" : "") +
                       (sizeof(Integer) < sizeof(int64_t) ? " that fits an int" : ""));
}

}  // namespace

std::string write(double value) {
  char text[40];
  std::snprintf(text, sizeof(text), "%.17g", value);
  return text;
}
std::string write(int64_t value) { return std::to_string(value); }
std::string write(uint64_t value) { return std::to_string(value); }
std::string write(int value) { return std::to_string(value); }
std::string write(bool value) { return value ? "1" : "0"; }
std::string write(const std::string& value) { return value; }
std::string write(const std::vector<int64_t>& values) {
  std::string text;
  for (const auto value : values) text += (text.empty() ? "" : ",") + std::to_string(value);
  return text;
}

void read(const std::string& text, double& into, const SpecReader& reader, const std::string& key) {
  if (!text.empty() && !std::isspace(static_cast<unsigned char>(text.front()))) {
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (*end == '\0') {
      into = value;
      return;
    }
  }
  reader.fail(key, "\"" + text + "\" is not a number");
}
void read(const std::string& text, int64_t& into, const SpecReader& reader, const std::string& key) {
  into = whole_number<int64_t>(text, reader, key);
}
void read(const std::string& text, uint64_t& into, const SpecReader& reader, const std::string& key) {
  into = whole_number<uint64_t>(text, reader, key);
}
void read(const std::string& text, int& into, const SpecReader& reader, const std::string& key) {
  into = whole_number<int>(text, reader, key);
}
void read(const std::string& text, bool& into, const SpecReader& reader, const std::string& key) {
  if (text != "0" && text != "1") reader.fail(key, "\"" + text + "\" is not 0 or 1");
  into = text == "1";
}
void read(const std::string& text, std::string& into, const SpecReader&, const std::string&) { into = text; }
void read(const std::string& text, std::vector<int64_t>& into, const SpecReader& reader, const std::string& key) {
  into.clear();
  size_t start = 0;
  while (start < text.size()) {
    const auto end = std::min(text.find(',', start), text.size());
    const auto value = parse_whole<int64_t>(text.substr(start, end - start));
    if (!value) reader.fail(key, "\"" + text + "\" is not a comma-separated list of whole numbers");
    into.push_back(*value);
    start = end + 1;
  }
}

}  // namespace spec_text

void SpecWriter::operator()(const std::string& prefix, const rl::AlgorithmOptions& options) {
  for (const auto& [name, value] : options.values()) put(prefix + name, spec_text::write(value));
}

void SpecWriter::put(const std::string& key, const std::string& text) {
  auto [where, added] = spec_.options.emplace(key, text);
  if (!added && where->second != text)
    throw Error("role spec " + describe(spec_.id) + ": option \"" + key + "\" written as \"" + where->second +
                "\" and as \"" + text + "\"");
}

void SpecFieldReader::operator()(const std::string& prefix, rl::AlgorithmOptions& options) {
  for (const auto& [key, text] : reader_.spec().options) {
    if (key.rfind(prefix, 0) != 0) continue;
    double value = 0;
    spec_text::read(text, value, reader_, key);
    options.set(key.substr(prefix.size()), value);
  }
}

}  // namespace troupe::actors
