/// The one file that asks the CUDA runtime (through torch's device guard) what devices exist.
#include <troupe/placement/resources.hpp>

#ifdef TROUPE_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>

#include <troupe/common/error.hpp>
#endif

namespace troupe::placement {

std::vector<GpuDevice> detect_cuda_devices() {
  std::vector<GpuDevice> gpus;
#ifdef TROUPE_WITH_CUDA
  const int count = c10::cuda::device_count();  // 0 (no throw) without a driver or device
  for (int i = 0; i < count; ++i) {
    c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(i));
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess)
      throw Error("cuda:" + std::to_string(i) + ": cannot read device memory (cudaMemGetInfo failed)");
    gpus.push_back({i, static_cast<int64_t>(total_bytes), static_cast<int64_t>(free_bytes)});
  }
#endif
  return gpus;
}

}  // namespace troupe::placement
