// libFuzzer target: a topology file (--topology). Any bytes either parse into a
// Topology or are refused with troupe::Error naming the field.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/placement/topology.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto json = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  try {
    (void)troupe::placement::parse_topology(json, "fuzz.json");
  } catch (const troupe::Error&) {
  }
  return 0;
}
