#pragma once
// Tensor glue of the CUDA fused AdamW (cuda/fused_adamw.cuh): the launcher in
// src/fused_adamw.cpp calls it when the params are on a CUDA device, with the
// arguments of kernels::fused_adamw (see <troupe/kernels/fused_adamw.hpp>). All the
// tensors with a grad go through multi-tensor launches (up to 24 tensors and 320
// chunks of 64K elements each), not one launch per tensor.
#include <troupe/kernels/fused_adamw.hpp>

namespace troupe::kernels::cuda {

void fused_adamw(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                 const std::vector<torch::Tensor>& exp_avgs, const std::vector<torch::Tensor>& exp_avg_sqs,
                 const std::vector<int64_t>& steps, const AdamWHyper& hyper,
                 const std::vector<torch::Tensor>& bf16_copies);

}  // namespace troupe::kernels::cuda
