// libFuzzer target: a whole `.safetensors` file (length prefix, JSON header, data). Any
// bytes either give a header whose every tensor lies inside the data section, or are
// refused with troupe::Error naming the file; nothing else may escape or crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <troupe/common/error.hpp>

#include "safetensors_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto header = troupe::models::safetensors::parse_header(data, size, "fuzz.safetensors");
    // What the loader relies on: each tensor's bytes can be read from the file as it is.
    for (const auto& e : header.entries) {
      if (e.begin > e.end || e.end > header.data_size || header.data_offset + header.data_size != size) std::abort();
      volatile uint8_t sink = 0;
      for (uint64_t i = e.begin; i < e.end; ++i) sink = sink ^ data[header.data_offset + i];
      (void)sink;
    }
  } catch (const troupe::Error&) {
  }
  return 0;
}
