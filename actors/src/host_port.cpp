/// parse_host_port: "HOST:PORT" with the flag named in errors; local_address_towards.
#include "host_port.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

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

std::string local_address_towards(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const auto where = "the local address towards " + host + ":" + std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
    throw Error(where + ": " + gai_strerror(rc));
  std::string error = "no address";
  for (auto* a = found; a; a = a->ai_next) {
    // A connected UDP socket sends nothing; the kernel only picks the route and source.
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    char text[INET6_ADDRSTRLEN] = {};
    const bool ok = connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
                    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0 &&
                    inet_ntop(local.ss_family,
                              local.ss_family == AF_INET6
                                  ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                                  : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr),
                              text, sizeof text) != nullptr;
    if (!ok) error = std::strerror(errno);
    close(fd);
    if (ok) {
      freeaddrinfo(found);
      return text;
    }
  }
  freeaddrinfo(found);
  throw Error(where + ": " + error);
}

}  // namespace troupe::actors
