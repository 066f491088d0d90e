#pragma once
/// Collectives over c10d's ProcessGroupGloo: PyTorch's own CPU collectives, the ones
/// `torch.distributed` uses with backend "gloo".
///
/// Built when gloo's headers are found (Debian's libgloo-dev, see transport/CMakeLists.txt):
/// the torch wheel carries gloo compiled into libtorch_cpu.so but not its headers.
#include <chrono>
#include <memory>
#include <string>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <troupe/transport/communicator.hpp>

namespace troupe::transport {

/// True when this build has c10d Gloo (TROUPE_WITH_GLOO).
bool gloo_available();

/// Joins group `group` (a prefix in `store`, so several groups share one store) as
/// `rank` of `size` over ProcessGroupGloo. `hostname` is the address the other ranks
/// reach this one at (its TCP transport binds there); 127.0.0.1 for one machine.
/// Throws troupe::Error naming the group when gloo is not built or the rendezvous fails.
std::unique_ptr<Communicator> make_gloo_communicator(c10::intrusive_ptr<c10d::Store> store, int rank, int size,
                                                     const std::string& group = "default",
                                                     std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                                     const std::string& hostname = "127.0.0.1");

}  // namespace troupe::transport
