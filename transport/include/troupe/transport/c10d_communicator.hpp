#pragma once
/// Collectives over c10d process groups: PyTorch's own, the ones `torch.distributed`
/// uses. Gloo on CPU tensors; NCCL on CUDA tensors when troupe is built with CUDA.
///
/// Gloo is built when gloo's headers are found (Debian's libgloo-dev, see
/// transport/CMakeLists.txt): the torch wheel carries gloo compiled into libtorch_cpu.so
/// but not its headers. NCCL is built with troupe's CUDA parts (nccl.h from the toolkit).
#include <chrono>
#include <memory>
#include <string>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <troupe/transport/communicator.hpp>

namespace troupe::transport {

/// True when this build has c10d Gloo (TROUPE_WITH_GLOO).
bool gloo_available();
/// True when this build has c10d NCCL (built with CUDA); says nothing about devices.
bool nccl_available();

/// Joins group `group` (a prefix in `store`, so several groups share one store) as
/// `rank` of `size` over ProcessGroupGloo. `hostname` is the address the other ranks
/// reach this one at (its TCP transport binds there); 127.0.0.1 for one machine.
/// Tensors may be anywhere; device tensors are staged through the host.
/// Throws troupe::Error naming the group when gloo is not built or the rendezvous fails.
std::unique_ptr<Communicator> make_gloo_communicator(c10::intrusive_ptr<c10d::Store> store, int rank, int size,
                                                     const std::string& group = "default",
                                                     std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                                     const std::string& hostname = "127.0.0.1");

/// Joins group `group` as `rank` of `size` over ProcessGroupNCCL on CUDA device
/// `device_index`; tensors are moved there (and results back) when they live elsewhere.
/// Throws troupe::Error when NCCL is not built, the device does not exist, or the
/// rendezvous fails.
std::unique_ptr<Communicator> make_nccl_communicator(c10::intrusive_ptr<c10d::Store> store, int rank, int size,
                                                     int device_index, const std::string& group = "default",
                                                     std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace troupe::transport
