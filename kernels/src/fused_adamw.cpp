// The fused AdamW launcher: checks, torch's scalars per tensor, and every tensor cut
// into spans shared over the intra-op threads in one parallel region (a model's many
// small biases and norms then cost no more than their bytes).
#include <troupe/kernels/fused_adamw.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include <ATen/Parallel.h>

#include <troupe/common/error.hpp>
#include "cpu/fused_adamw.hpp"
#include "kernel_isa.hpp"

#if defined(TROUPE_WITH_CUDA) && __has_include("cuda/fused_adamw_cuda.hpp")
#include "cuda/fused_adamw_cuda.hpp"
#define TROUPE_FUSED_ADAMW_CUDA 1
#endif

namespace troupe::kernels {
namespace {

/// Elements per span: big enough to amortise a task, small enough to balance two
/// threads over one large tensor.
constexpr int64_t kSpan = int64_t{1} << 16;

void check(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
           const std::vector<torch::Tensor>& exp_avgs, const std::vector<torch::Tensor>& exp_avg_sqs,
           const std::vector<int64_t>& steps, const AdamWHyper& hyper, const std::vector<torch::Tensor>& bf16_copies) {
  const auto n = params.size();
  TORCH_CHECK(grads.size() == n && exp_avgs.size() == n && exp_avg_sqs.size() == n && steps.size() == n &&
                  (bf16_copies.empty() || bf16_copies.size() == n),
              "fused_adamw: ", n, " params but ", grads.size(), " grads, ", exp_avgs.size(), " exp_avgs, ",
              exp_avg_sqs.size(), " exp_avg_sqs, ", steps.size(), " steps, ", bf16_copies.size(), " bf16 copies");
  if (hyper.amsgrad) throw Error("fused_adamw: amsgrad is not supported by the fused kernel");
  std::optional<torch::Device> device;
  for (size_t i = 0; i < n; ++i) {
    const auto& g = grads[i];
    if (!g.defined()) continue;
    const auto& p = params[i];
    auto fp32_like_p = [&](const torch::Tensor& t, const char* what) {
      TORCH_CHECK(t.defined() && t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.numel() == p.numel() &&
                      t.device() == p.device(),
                  "fused_adamw: ", what, "[", i, "] must be contiguous fp32 of ", p.numel(), " elements on ",
                  p.device());
    };
    TORCH_CHECK(p.defined() && p.scalar_type() == torch::kFloat32 && p.is_contiguous(), "fused_adamw: params[", i,
                "] must be contiguous fp32, got ", p.defined() ? toString(p.scalar_type()) : "undefined");
    TORCH_CHECK(!g.is_sparse(), "fused_adamw: grads[", i, "] is sparse; AdamW does not support sparse gradients");
    TORCH_CHECK(g.scalar_type() == torch::kFloat32 && g.numel() == p.numel() && g.device() == p.device(),
                "fused_adamw: grads[", i, "] must be fp32 of ", p.numel(), " elements on ", p.device());
    fp32_like_p(exp_avgs[i], "exp_avgs");
    fp32_like_p(exp_avg_sqs[i], "exp_avg_sqs");
    if (steps[i] < 1) throw Error("fused_adamw: steps[" + std::to_string(i) + "] is " + std::to_string(steps[i]) +
                                  "; the step count after the update starts at 1");
    if (!bf16_copies.empty()) {
      const auto& c = bf16_copies[i];
      TORCH_CHECK(c.defined() && c.scalar_type() == torch::kBFloat16 && c.is_contiguous() && c.numel() == p.numel() &&
                      c.device() == p.device(),
                  "fused_adamw: bf16_copies[", i, "] must be contiguous bf16 of ", p.numel(), " elements on ",
                  p.device());
    }
    if (!device) device = p.device();
    TORCH_CHECK(*device == p.device(), "fused_adamw: params on ", *device, " and ", p.device());
  }
}

/// torch's arithmetic: its double scalars, rounded to fp32 where its kernels take them.
cpu::AdamWScalars scalars(const AdamWHyper& h, int64_t step) {
  cpu::AdamWScalars s;
  s.apply_decay = h.weight_decay != 0;
  s.decay = static_cast<float>(1 - h.lr * h.weight_decay);
  s.beta1 = static_cast<float>(h.beta1);
  s.one_minus_beta1 = static_cast<float>(1 - h.beta1);
  s.beta2 = static_cast<float>(h.beta2);
  s.one_minus_beta2 = static_cast<float>(1 - h.beta2);
  const double bias_correction1 = 1 - std::pow(h.beta1, static_cast<double>(step));
  const double bias_correction2 = 1 - std::pow(h.beta2, static_cast<double>(step));
  s.sqrt_bias_correction2 = static_cast<float>(std::sqrt(bias_correction2));
  s.eps = static_cast<float>(h.eps);
  s.neg_step_size = static_cast<float>(-(h.lr / bias_correction1));
  return s;
}

struct Span {
  size_t tensor;
  int64_t begin, end;
};

}  // namespace

void fused_adamw(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                 const std::vector<torch::Tensor>& exp_avgs, const std::vector<torch::Tensor>& exp_avg_sqs,
                 const std::vector<int64_t>& steps, const AdamWHyper& hyper,
                 const std::vector<torch::Tensor>& bf16_copies) {
  check(params, grads, exp_avgs, exp_avg_sqs, steps, hyper, bf16_copies);
  const bool any_cuda = std::any_of(params.begin(), params.end(), [&](const torch::Tensor& p) {
    return p.defined() && p.is_cuda();
  });
  if (any_cuda) {
#ifdef TROUPE_FUSED_ADAMW_CUDA
    cuda::fused_adamw(params, grads, exp_avgs, exp_avg_sqs, steps, hyper, bf16_copies);
#else
    reference::fused_adamw(params, grads, exp_avgs, exp_avg_sqs, steps, hyper, bf16_copies);
#endif
    return;
  }
  std::vector<torch::Tensor> dense_grads(params.size());  // grads with unit strides
  std::vector<cpu::AdamWScalars> per_tensor(params.size());
  std::vector<Span> spans;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!grads[i].defined()) continue;
    dense_grads[i] = grads[i].contiguous();
    per_tensor[i] = scalars(hyper, steps[i]);
    const int64_t n = params[i].numel();
    for (int64_t begin = 0; begin < n; begin += kSpan) spans.push_back({i, begin, std::min(n, begin + kSpan)});
  }
  const auto kernel = cpu::adamw_kernel(kernel_isa());
  at::parallel_for(0, static_cast<int64_t>(spans.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      const auto& span = spans[static_cast<size_t>(k)];
      const auto i = span.tensor;
      uint16_t* copy = bf16_copies.empty()
                           ? nullptr
                           : reinterpret_cast<uint16_t*>(bf16_copies[i].data_ptr<c10::BFloat16>()) + span.begin;
      kernel(params[i].data_ptr<float>() + span.begin, dense_grads[i].const_data_ptr<float>() + span.begin,
             exp_avgs[i].data_ptr<float>() + span.begin, exp_avg_sqs[i].data_ptr<float>() + span.begin, copy,
             span.end - span.begin, per_tensor[i]);
    }
  });
}

}  // namespace troupe::kernels
