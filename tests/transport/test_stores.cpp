// The c10d stores ranks meet through.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include <troupe/common/error.hpp>
#include <troupe/transport/c10d_store.hpp>

using namespace troupe::transport;

namespace {

/// Local addresses (hex, as /proc/net/tcp{,6} write them) of listening sockets on `port`.
std::vector<std::string> listening_addresses(std::uint16_t port) {
  std::vector<std::string> found;
  char port_hex[8];
  std::snprintf(port_hex, sizeof port_hex, "%04X", port);
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      const auto colon = local.rfind(':');
      if (state == "0A" && local.substr(colon + 1) == port_hex) found.push_back(local.substr(0, colon));
    }
  }
  return found;
}

}  // namespace

TEST_CASE("a TCPStore server listens on its host only, and clients reach it", "[transport][store]") {
  auto server = make_tcp_store("127.0.0.1", 0, true, 1, std::chrono::seconds(10));
  const auto port = tcp_store_port(server);
  REQUIRE(port != 0);
  // c10d's own server would listen on every interface (00000000 / all-zero IPv6).
  CHECK(listening_addresses(port) == std::vector<std::string>{"0100007F"});  // 127.0.0.1
  auto client = make_tcp_store("127.0.0.1", port, false, 1, std::chrono::seconds(10));
  client->set("key", std::vector<uint8_t>{1, 2, 3});
  CHECK(server->get("key") == std::vector<uint8_t>{1, 2, 3});
  CHECK_THROWS_WITH(make_tcp_store("127.0.0.1", port, true, 1, std::chrono::seconds(1)),
                    Catch::Contains("c10d TCPStore server on 127.0.0.1:" + std::to_string(port)));
}
