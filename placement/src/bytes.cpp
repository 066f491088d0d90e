#include "bytes.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include <troupe/common/error.hpp>

namespace troupe::placement {

int64_t parse_bytes(const nlohmann::json& value, const std::string& where) {
  if (value.is_number_integer() || value.is_number_unsigned()) {
    const auto bytes = value.get<int64_t>();
    if (bytes < 0) throw Error(where + ": " + value.dump() + " is negative");
    return bytes;
  }
  if (!value.is_string()) throw Error(where + ": expected bytes as an integer or a string like \"16GiB\", got " + value.dump());
  const auto text = value.get<std::string>();
  size_t pos = 0;
  double number = 0;
  try {
    number = std::stod(text, &pos);
  } catch (const std::exception&) {
    throw Error(where + ": \"" + text + "\" is not a size (expected e.g. \"16GiB\" or \"80GB\")");
  }
  while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
  std::string unit = text.substr(pos);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::vector<std::pair<std::string, double>> units = {
      {"", 1.0},          {"B", 1.0},
      {"K", 1024.0},      {"KIB", 1024.0},       {"KB", 1e3},
      {"M", 1048576.0},   {"MIB", 1048576.0},    {"MB", 1e6},
      {"G", 1073741824.0}, {"GIB", 1073741824.0}, {"GB", 1e9},
      {"T", 1099511627776.0}, {"TIB", 1099511627776.0}, {"TB", 1e12}};
  for (const auto& [name, scale] : units) {
    if (unit != name) continue;
    if (!(number >= 0) || !std::isfinite(number)) throw Error(where + ": \"" + text + "\" is not a non-negative size");
    return static_cast<int64_t>(std::llround(number * scale));
  }
  throw Error(where + ": unknown unit in \"" + text + "\" (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)");
}

std::string format_bytes(int64_t bytes) {
  const char* sign = bytes < 0 ? "-" : "";
  const double b = std::fabs(static_cast<double>(bytes));
  char out[48];
  if (b >= static_cast<double>(kGiB)) std::snprintf(out, sizeof out, "%s%.1f GiB", sign, b / static_cast<double>(kGiB));
  else if (b >= static_cast<double>(kMiB)) std::snprintf(out, sizeof out, "%s%.1f MiB", sign, b / static_cast<double>(kMiB));
  else if (b >= static_cast<double>(kKiB)) std::snprintf(out, sizeof out, "%s%.1f KiB", sign, b / static_cast<double>(kKiB));
  else std::snprintf(out, sizeof out, "%s%.0f B", sign, b);
  return out;
}

}  // namespace troupe::placement
