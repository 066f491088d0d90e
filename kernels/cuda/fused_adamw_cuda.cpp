#include "cuda/fused_adamw_cuda.hpp"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "cuda/fused_adamw.cuh"
#include "cuda/launch_check.hpp"

namespace troupe::kernels::cuda {
namespace {

constexpr const char* kOp = "fused_adamw";

void check_like(const torch::Tensor& t, const torch::Tensor& p, torch::ScalarType dtype, size_t i, const char* name) {
  TORCH_CHECK(t.defined(), kOp, ": ", name, "[", i, "] is undefined");
  TORCH_CHECK(t.scalar_type() == dtype, kOp, ": ", name, "[", i, "] must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == p.sizes(), kOp, ": ", name, "[", i, "] is ", t.sizes(), " but params[", i, "] is ",
              p.sizes());
  TORCH_CHECK(t.is_contiguous(), kOp, ": ", name, "[", i, "] must be contiguous");
}

}  // namespace

void fused_adamw(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                 const std::vector<torch::Tensor>& exp_avgs, const std::vector<torch::Tensor>& exp_avg_sqs,
                 const std::vector<int64_t>& steps, const AdamWHyper& hyper,
                 const std::vector<torch::Tensor>& bf16_copies) {
  TORCH_CHECK(!hyper.amsgrad, kOp, ": amsgrad is not supported by the fused kernel");
  const size_t n = params.size();
  TORCH_CHECK(grads.size() == n && exp_avgs.size() == n && exp_avg_sqs.size() == n && steps.size() == n, kOp,
              ": params, grads, exp_avgs, exp_avg_sqs and steps must be as many, got ", n, ", ", grads.size(), ", ",
              exp_avgs.size(), ", ", exp_avg_sqs.size(), ", ", steps.size());
  TORCH_CHECK(bf16_copies.empty() || bf16_copies.size() == n, kOp, ": bf16_copies must be empty or one a param, got ",
              bf16_copies.size(), " for ", n);
  TORCH_CHECK(hyper.beta1 >= 0 && hyper.beta1 < 1 && hyper.beta2 >= 0 && hyper.beta2 < 1, kOp,
              ": betas must be in [0, 1), got ", hyper.beta1, ", ", hyper.beta2);

  std::vector<AdamWTensor> list;
  list.reserve(n);
  std::optional<torch::Device> device;
  for (size_t i = 0; i < n; ++i) {
    if (!grads[i].defined()) continue;  // no grad: the param is left as it is
    const auto& p = params[i];
    TORCH_CHECK(p.defined() && p.scalar_type() == torch::kFloat32 && p.is_contiguous(), kOp, ": params[", i,
                "] must be a contiguous fp32 tensor");
    check_like(grads[i], p, torch::kFloat32, i, "grads");
    check_like(exp_avgs[i], p, torch::kFloat32, i, "exp_avgs");
    check_like(exp_avg_sqs[i], p, torch::kFloat32, i, "exp_avg_sqs");
    if (!bf16_copies.empty()) check_like(bf16_copies[i], p, torch::kBFloat16, i, "bf16_copies");
    TORCH_CHECK(steps[i] >= 1, kOp, ": steps[", i, "] must be >= 1 (the step after this update), got ", steps[i]);
    if (!device) device = p.device();
    for (const auto* t : {&p, &grads[i], &exp_avgs[i], &exp_avg_sqs[i]})
      TORCH_CHECK(t->is_cuda() && t->device() == *device, kOp, ": tensor ", i, " is on ", t->device(),
                  "; all must be on one CUDA device (the first is on ", *device, ")");
    if (!bf16_copies.empty())
      TORCH_CHECK(bf16_copies[i].device() == *device, kOp, ": bf16_copies[", i, "] is on ", bf16_copies[i].device());
    AdamWTensor t;
    t.param = p.data_ptr<float>();
    t.grad = grads[i].data_ptr<float>();
    t.exp_avg = exp_avgs[i].data_ptr<float>();
    t.exp_avg_sq = exp_avg_sqs[i].data_ptr<float>();
    t.bf16_copy = bf16_copies.empty() ? nullptr
                                      : reinterpret_cast<__nv_bfloat16*>(bf16_copies[i].data_ptr<at::BFloat16>());
    t.numel = p.numel();
    t.step = steps[i];
    list.push_back(t);
  }
  if (list.empty()) return;
  const c10::cuda::CUDAGuard guard(*device);
  AdamWScalars s;
  s.lr = hyper.lr, s.beta1 = hyper.beta1, s.beta2 = hyper.beta2, s.eps = hyper.eps, s.weight_decay = hyper.weight_decay;
  cuda::fused_adamw(list.data(), static_cast<int64_t>(list.size()), s, at::cuda::getCurrentCUDAStream());
  check_launch(kOp);
}

}  // namespace troupe::kernels::cuda
