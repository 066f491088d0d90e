// libFuzzer target: one JSONL row of a dataset through every adapter (every schema
// troupe reads). Each adapter turns it into a sample, skips it, or refuses it with
// troupe::Error naming the field.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/data/adapters.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> schemas = troupe::data::known_schemas();
  const auto row = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (row.is_discarded()) return 0;  // the reader refuses a line that is not JSON, naming file and line
  for (const auto& schema : schemas) {
    try {
      (void)troupe::data::find_adapter(schema)(row);
    } catch (const troupe::Error&) {
    }
  }
  return 0;
}
