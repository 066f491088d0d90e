#pragma once
/// Byte counts as people write them: "16GiB", "80 GB", 1073741824.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace troupe::placement {

constexpr int64_t kKiB = int64_t{1} << 10;
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

/// Parses a size: a non-negative integer (bytes) or a string such as "16GiB", "1.5 TiB",
/// "80GB" (decimal units: KB, MB, GB, TB) or "512MiB". `where` names the field in errors.
int64_t parse_bytes(const nlohmann::json& value, const std::string& where);

/// "16.0 GiB", "512.0 MiB", "12 B": binary units, one decimal.
std::string format_bytes(int64_t bytes);

/// Integer division rounding up, for partitions with padding.
constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace troupe::placement
