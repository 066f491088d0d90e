#pragma once
// The glue's check after a raw launcher: a launch error (bad configuration, no kernel
// image for this GPU) surfaces here as a c10::Error naming the op. Errors inside the
// kernel surface at the next synchronising call, as for torch's own kernels.
#include <cuda_runtime_api.h>

#include <c10/util/Exception.h>

namespace troupe::kernels::cuda {

inline void check_launch(const char* op) {
  const cudaError_t err = cudaGetLastError();
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

}  // namespace troupe::kernels::cuda
