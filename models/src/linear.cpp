#include <troupe/models/linear.hpp>

#include <cmath>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::models {

LinearImpl::LinearImpl(LinearOptions options) : options_(std::move(options)) {
  const auto in = options_.in_features(), out = options_.out_features();
  if (options_.tied_weight()) {
    weight = register_parameter("weight", *options_.tied_weight());
  } else {
    auto w = options_.transposed() ? torch::empty({in, out}) : torch::empty({out, in});
    torch::nn::init::normal_(w, 0.0, 0.02);
    weight = register_parameter("weight", w);
  }
  if (options_.bias()) bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  // x: (..., in) -> (..., out)
  auto y = options_.transposed()
               ? (bias.defined() ? torch::addmm(bias, x.reshape({-1, x.size(-1)}), weight)
                                 : torch::mm(x.reshape({-1, x.size(-1)}), weight))
                     .view([&] {
                       auto s = x.sizes().vec();
                       s.back() = options_.out_features();
                       return s;
                     }())
               : torch::nn::functional::linear(x, weight, bias);
  if (has_lora() && lora_enabled_ && !lora_fused_) {
    auto h = x;
    if (lora_dropout_ > 0 && is_training()) h = torch::dropout(h, lora_dropout_, true);
    y = y + torch::nn::functional::linear(torch::nn::functional::linear(h, lora_A), lora_B) * lora_scale_;
  }
  return y;
}

void LinearImpl::enable_lora(int64_t rank, double alpha, double dropout) {
  if (rank <= 0) throw Error("LoRA rank must be positive, got " + std::to_string(rank));
  if (has_lora()) throw Error("LoRA is already enabled on this layer");
  auto opts = torch::TensorOptions().dtype(weight.dtype()).device(weight.device());
  auto a = torch::empty({rank, options_.in_features()}, opts);
  // Kaiming-uniform A and zero B, as LoRA's reference implementation does.
  torch::nn::init::kaiming_uniform_(a, std::sqrt(5.0));
  lora_A = register_parameter("lora_A", a);
  lora_B = register_parameter("lora_B", torch::zeros({options_.out_features(), rank}, opts));
  lora_scale_ = alpha / static_cast<double>(rank);
  lora_dropout_ = dropout;
}

torch::Tensor LinearImpl::lora_delta() const {
  auto delta = torch::mm(lora_B, lora_A) * lora_scale_;  // (out, in)
  return options_.transposed() ? delta.t() : delta;
}

void LinearImpl::fuse_lora() {
  if (!has_lora() || lora_fused_) return;
  torch::NoGradGuard no_grad;
  weight.add_(lora_delta().to(weight.dtype()));
  lora_fused_ = true;
}

void LinearImpl::unfuse_lora() {
  if (!has_lora() || !lora_fused_) return;
  torch::NoGradGuard no_grad;
  weight.sub_(lora_delta().to(weight.dtype()));
  lora_fused_ = false;
}

torch::Tensor LinearImpl::effective_weight(bool with_lora) const {
  torch::NoGradGuard no_grad;
  auto w = weight.detach();
  if (has_lora()) {
    if (with_lora && !lora_fused_) w = w + lora_delta().to(w.dtype());
    if (!with_lora && lora_fused_) w = w - lora_delta().to(w.dtype());
  }
  return options_.transposed() ? w.t() : w;
}

}  // namespace troupe::models
