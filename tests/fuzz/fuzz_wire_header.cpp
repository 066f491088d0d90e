// libFuzzer target: the wire headers a process receives from its peers (a tensor batch's
// metadata and a pull request). Any bytes decode or are refused with troupe::Error.
#include <cstddef>
#include <cstdint>

#include <troupe/common/error.hpp>
#include <troupe/transport/wire_header.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)troupe::transport::decode_batch_meta(data, size, "fuzz");
  } catch (const troupe::Error&) {
  }
  try {
    (void)troupe::transport::decode_pull_meta(data, size, "fuzz");
  } catch (const troupe::Error&) {
  }
  return 0;
}
