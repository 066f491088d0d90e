#include <troupe/transport/c10d_store.hpp>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <troupe/common/error.hpp>

namespace troupe::transport {
namespace {

/// A TCP socket bound to `host`:`port` and listening; the caller owns the descriptor.
int listening_socket(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const auto where = "transport: c10d TCPStore server on " + host + ":" + std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
    throw Error(where + ": " + gai_strerror(rc));
  std::string last_error = "no address";
  for (auto* a = found; a; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0) {
      freeaddrinfo(found);
      return fd;
    }
    last_error = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(found);
  throw Error(where + ": " + last_error);
}

}  // namespace

c10::intrusive_ptr<c10d::Store> make_tcp_store(const std::string& host, std::uint16_t port, bool is_server,
                                               int world_size, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = port;
  options.isServer = is_server;
  options.numWorkers = static_cast<std::size_t>(world_size);
  options.waitWorkers = true;
  options.timeout = timeout;
  int fd = -1;
  if (is_server) {
    fd = listening_socket(host, port);
    options.masterListenFd = fd;  // the store's server takes this socket over
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
    options.port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                      : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  try {
    return c10::make_intrusive<c10d::TCPStore>(host, options);
  } catch (const std::exception& error) {
    throw Error("transport: c10d TCPStore at " + host + ":" + std::to_string(options.port) + ": " + error.what());
  }
}

std::uint16_t tcp_store_port(const c10::intrusive_ptr<c10d::Store>& store) {
  auto* tcp = dynamic_cast<c10d::TCPStore*>(store.get());
  if (!tcp) throw Error("transport: tcp_store_port needs a TCPStore");
  return tcp->getPort();
}

c10::intrusive_ptr<c10d::Store> make_file_store(const std::string& path, int world_size) {
  try {
    return c10::make_intrusive<c10d::FileStore>(path, world_size);
  } catch (const std::exception& error) {
    throw Error("transport: c10d FileStore at " + path + ": " + error.what());
  }
}

}  // namespace troupe::transport
