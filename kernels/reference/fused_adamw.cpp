// AdamW in LibTorch ops, line for line torch::optim::AdamW::step (torch 2.x): the
// decoupled decay first, then the moments, the bias-corrected denominator and addcdiv_.
#include <troupe/kernels/fused_adamw.hpp>

#include <cmath>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::kernels::reference {

void fused_adamw(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                 const std::vector<torch::Tensor>& exp_avgs, const std::vector<torch::Tensor>& exp_avg_sqs,
                 const std::vector<int64_t>& steps, const AdamWHyper& hyper,
                 const std::vector<torch::Tensor>& bf16_copies) {
  const auto n = params.size();
  TORCH_CHECK(grads.size() == n && exp_avgs.size() == n && exp_avg_sqs.size() == n && steps.size() == n &&
                  (bf16_copies.empty() || bf16_copies.size() == n),
              "fused_adamw: ", n, " params but ", grads.size(), " grads, ", exp_avgs.size(), " exp_avgs, ",
              exp_avg_sqs.size(), " exp_avg_sqs, ", steps.size(), " steps, ", bf16_copies.size(), " bf16 copies");
  if (hyper.amsgrad) throw Error("fused_adamw: amsgrad is not supported");
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < n; ++i) {
    const auto& grad = grads[i];
    if (!grad.defined()) continue;
    const auto& p = params[i];
    if (hyper.weight_decay != 0) p.mul_(1 - hyper.lr * hyper.weight_decay);
    const auto step = static_cast<double>(steps[i]);
    const double bias_correction1 = 1 - std::pow(hyper.beta1, step);
    const double bias_correction2 = 1 - std::pow(hyper.beta2, step);
    exp_avgs[i].mul_(hyper.beta1).add_(grad, 1 - hyper.beta1);
    exp_avg_sqs[i].mul_(hyper.beta2).addcmul_(grad, grad, 1 - hyper.beta2);
    auto denom = (exp_avg_sqs[i].sqrt() / std::sqrt(bias_correction2)).add_(hyper.eps);
    p.addcdiv_(exp_avgs[i], denom, -(hyper.lr / bias_correction1));
    if (!bf16_copies.empty()) bf16_copies[i].copy_(p);
  }
}

}  // namespace troupe::kernels::reference
