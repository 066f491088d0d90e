#pragma once
/// "HOST:PORT" as flags and role specs write an address (--join, --listen, a rendezvous).
#include <cstdint>
#include <string>

namespace troupe::actors {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

/// Parses `text`; throws troupe::Error naming `what` (e.g. "--join") when the host is
/// missing, the port is not a number, or it is outside 1..65535 (0..65535 with
/// `any_port`, where 0 means a free port).
HostPort parse_host_port(const std::string& text, const std::string& what, bool any_port = false);

/// This machine's address on the route to `host`:`port` (the source address a packet
/// there would carry): what to bind a listener to so that `host`'s machine reaches it.
/// Unlike the host name, it is never 127.0.1.1 for a remote peer. Throws troupe::Error
/// when `host` does not resolve or has no route.
std::string local_address_towards(const std::string& host, uint16_t port);

}  // namespace troupe::actors
