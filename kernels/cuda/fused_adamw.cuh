#pragma once
// Raw CUDA launcher of the fused AdamW step (no LibTorch): torch.optim.AdamW's update
// (decoupled decay, bias correction) over a list of fp32 tensors in multi-tensor
// launches, each element read and written once. Per tensor:
//   p *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
// and bf16_copy (when not null) = bf16(p). All pointers contiguous, `numel` elements.
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace troupe::kernels::cuda {

struct AdamWTensor {
  float* param = nullptr;
  const float* grad = nullptr;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  __nv_bfloat16* bf16_copy = nullptr;  // or null
  int64_t numel = 0;
  int64_t step = 1;  // after this update (1 on the first)
};

struct AdamWScalars {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

void fused_adamw(const AdamWTensor* tensors, int64_t count, const AdamWScalars& hyper, cudaStream_t stream);

}  // namespace troupe::kernels::cuda
