/// make_nccl_communicator: c10d::ProcessGroupNCCL behind a BackendCommunicator, built
/// with troupe's CUDA parts (TROUPE_WITH_CUDA); NCCL itself is libtorch_cuda's.
#include <troupe/transport/c10d_communicator.hpp>

#include <troupe/common/error.hpp>

#include "c10d_backend_communicator.hpp"

#ifdef TROUPE_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace troupe::transport {

#ifdef TROUPE_WITH_CUDA

bool nccl_available() { return true; }

std::unique_ptr<Communicator> make_nccl_communicator(c10::intrusive_ptr<c10d::Store> store, int rank, int size,
                                                     int device_index, const std::string& group,
                                                     std::chrono::milliseconds timeout) {
  if (!store) throw Error("transport: nccl group '" + group + "' needs a store");
  check_rank("nccl", group, rank, size);
  const int devices = static_cast<int>(c10::cuda::device_count());
  if (device_index < 0 || device_index >= devices)
    throw Error(describe_group("nccl", group, rank, size) + ": CUDA device " + std::to_string(device_index) +
                " does not exist (" + std::to_string(devices) + " visible)");
  try {
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    const at::Device device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index));
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("troupe/nccl/" + group, std::move(store));
    auto backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, size, options);  // communicators made on first use
    return std::make_unique<BackendCommunicator>(std::move(backend), rank, size, group, "nccl", device, prefixed);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& error) {
    throw Error(describe_group("nccl", group, rank, size) + " on cuda:" + std::to_string(device_index) + ": " +
                error.what());
  }
}

#else

bool nccl_available() { return false; }

std::unique_ptr<Communicator> make_nccl_communicator(c10::intrusive_ptr<c10d::Store>, int, int, int,
                                                     const std::string& group, std::chrono::milliseconds) {
  throw Error("transport: nccl group '" + group + "': this build has no CUDA parts (configure with TROUPE_CUDA=ON)");
}

#endif

}  // namespace troupe::transport
