#pragma once
/// AdamW over all of a model's tensors in one pass per tensor (decoupled weight decay,
/// bias correction, as torch.optim.AdamW): reads param, grad, exp_avg, exp_avg_sq once
/// and writes them once, instead of the dozen element-wise ops of torch's loop. An
/// optional bf16 working copy of each parameter is written in the same pass.
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace troupe::kernels {

struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;  ///< not supported by the fused kernel: refused
};

/// One step for every i: params[i] (fp32, contiguous), grads[i], exp_avgs[i],
/// exp_avg_sqs[i] alike, `steps[i]` the step number after this update (1 on the first
/// step; per tensor, as torch keeps it). `bf16_copies` empty, or one bf16 tensor per
/// param (same shape) that receives the updated value. Undefined grads are skipped.
void fused_adamw(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                 const std::vector<torch::Tensor>& exp_avgs, const std::vector<torch::Tensor>& exp_avg_sqs,
                 const std::vector<int64_t>& steps, const AdamWHyper& hyper,
                 const std::vector<torch::Tensor>& bf16_copies = {});

namespace reference {
/// torch.optim.AdamW's update, element-wise LibTorch ops (the same formula as
/// torch::optim::AdamW::step).
void fused_adamw(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                 const std::vector<torch::Tensor>& exp_avgs, const std::vector<torch::Tensor>& exp_avg_sqs,
                 const std::vector<int64_t>& steps, const AdamWHyper& hyper,
                 const std::vector<torch::Tensor>& bf16_copies = {});
}  // namespace reference

}  // namespace troupe::kernels
