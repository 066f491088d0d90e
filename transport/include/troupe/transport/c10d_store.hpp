#pragma once
/// The c10d stores ranks meet through (exchange addresses, rendezvous of process groups).
#include <chrono>
#include <cstdint>
#include <string>

#include <torch/csrc/distributed/c10d/Store.hpp>

namespace troupe::transport {

/// A c10d TCPStore on `host`:`port` (port 0 with `is_server`: a free one, see
/// tcp_store_port). The server (`is_server`, waiting for `world_size` clients) listens on
/// `host` only: c10d's own server would listen on every interface, so troupe binds the
/// socket itself and hands it over.
c10::intrusive_ptr<c10d::Store> make_tcp_store(const std::string& host, std::uint16_t port, bool is_server,
                                               int world_size, std::chrono::milliseconds timeout);
/// The port a TCPStore listens on or connects to.
std::uint16_t tcp_store_port(const c10::intrusive_ptr<c10d::Store>& store);
/// A c10d FileStore at `path` shared by `world_size` ranks of one machine.
c10::intrusive_ptr<c10d::Store> make_file_store(const std::string& path, int world_size);

}  // namespace troupe::transport
