// libFuzzer target: a model's config.json. Any bytes either parse into a Config or are
// refused with troupe::Error; nothing else may escape or crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/models/config.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto json = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;  // not JSON: load_config refuses it before parse_config
  try {
    (void)troupe::models::parse_config(json, "fuzz/config.json");
  } catch (const troupe::Error&) {
  }
  return 0;
}
