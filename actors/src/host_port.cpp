/// parse_host_port: "HOST:PORT" with the flag named in errors.
#include <troupe/actors/host_port.hpp>

#include <cstdlib>

#include <troupe/common/error.hpp>

namespace troupe::actors {

HostPort parse_host_port(const std::string& text, const std::string& what, bool any_port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    throw Error(what + " \"" + text + "\": expected HOST:PORT");
  char* end = nullptr;
  const long port = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port < (any_port ? 0 : 1) || port > 65535)
    throw Error(what + " \"" + text + "\": the port must be " + (any_port ? "0" : "1") + "..65535");
  return {text.substr(0, colon), static_cast<uint16_t>(port)};
}

}  // namespace troupe::actors
