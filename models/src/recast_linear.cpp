#include "recast_linear.hpp"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace troupe::models {
namespace {

struct RecastLinearFunction : torch::autograd::Function<RecastLinearFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, bool transposed) {
    const auto narrow = at::autocast::get_autocast_dtype(x.device().type());
    const auto rows = x.reshape({-1, x.size(-1)}).to(narrow);  // (N, in)
    const auto w = weight.to(narrow);                          // freed when the forward returns
    const auto product = transposed ? w : w.t();               // (in, out)
    auto y = bias.numel() > 0 ? torch::addmm(bias.to(narrow), rows, product) : torch::mm(rows, product);  // (N, out)
    ctx->save_for_backward({rows, weight});
    ctx->saved_data["transposed"] = transposed;
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["bias_dtype"] = static_cast<int64_t>(bias.scalar_type());
    auto shape = x.sizes().vec();
    shape.back() = y.size(1);
    return y.view(shape);  // (..., out)
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& rows = saved[0];    // (N, in), narrow
    const auto& weight = saved[1];  // (out, in) or (in, out), fp32
    const bool transposed = ctx->saved_data["transposed"].toBool();
    const auto g = grads[0].reshape({-1, grads[0].size(-1)}).to(rows.scalar_type());  // (N, out)
    torch::Tensor grad_x, grad_weight, grad_bias;
    if (ctx->needs_input_grad(0)) {
      const auto w = weight.to(rows.scalar_type());
      auto shape = grads[0].sizes().vec();
      shape.back() = rows.size(1);
      grad_x = (transposed ? torch::mm(g, w.t()) : torch::mm(g, w))
                   .view(shape)
                   .to(static_cast<torch::ScalarType>(ctx->saved_data["x_dtype"].toInt()));  // (..., in)
    }
    if (ctx->needs_input_grad(1))
      grad_weight = (transposed ? torch::mm(rows.t(), g) : torch::mm(g.t(), rows)).to(weight.scalar_type());
    if (ctx->needs_input_grad(2))
      grad_bias = g.sum(0).to(static_cast<torch::ScalarType>(ctx->saved_data["bias_dtype"].toInt()));  // (out)
    return {grad_x, grad_weight, grad_bias, torch::Tensor()};
  }
};

}  // namespace

bool recasts_under_autocast(const torch::Tensor& x, const torch::Tensor& weight) {
  const auto device = x.device().type();
  if (!torch::GradMode::is_enabled() || !at::autocast::is_autocast_enabled(device)) return false;
  // A trained weight: a frozen one in fp32 keeps autocast's path, so that it computes
  // bit for bit as the same weight stored in bf16 (frozen_weights.hpp).
  if (!weight.requires_grad()) return false;
  const auto narrow = at::autocast::get_autocast_dtype(device);
  return weight.scalar_type() == torch::kFloat32 && x.is_floating_point() && narrow != torch::kFloat32 &&
         weight.device() == x.device();
}

torch::Tensor recast_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            bool transposed) {
  // autograd functions take defined tensors: no bias travels as an empty one
  return RecastLinearFunction::apply(x, weight, bias.defined() ? bias : torch::empty({0}, weight.options()), transposed);
}

}  // namespace troupe::models
