// reference::decode_linear in plain LibTorch ops: the weight rounded to the packed
// dtype (and x with it for bf16), the product summed in fp32.
#include <troupe/kernels/decode_linear.hpp>

#include <torch/torch.h>

namespace troupe::kernels::reference {
namespace {

/// x and w rounded as the kernel rounds them, both returned in fp32.
std::pair<torch::Tensor, torch::Tensor> rounded(const torch::Tensor& x, const torch::Tensor& w, torch::ScalarType dtype) {
  return {x.to(dtype).to(torch::kFloat32), w.to(dtype).to(torch::kFloat32)};
}

}  // namespace

torch::Tensor apply_activation(const torch::Tensor& x, Activation activation) {
  switch (activation) {
    case Activation::None: return x;
    case Activation::Relu: return torch::relu(x);
    case Activation::Gelu: return torch::gelu(x);
    case Activation::GeluTanh: return torch::gelu(x, "tanh");
    case Activation::Silu: return torch::silu(x);
  }
  return x;
}

torch::Tensor decode_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            Activation activation, torch::ScalarType dtype) {
  auto [x32, w32] = rounded(x, weight, dtype);
  auto y = torch::nn::functional::linear(x32, w32, bias.defined() ? bias.to(torch::kFloat32) : torch::Tensor());
  return apply_activation(y, activation).to(x.scalar_type());  // (..., N)
}

torch::Tensor decode_gated_linear(const torch::Tensor& x, const torch::Tensor& gate, const torch::Tensor& up,
                                  torch::ScalarType dtype) {
  auto [x32, g32] = rounded(x, gate, dtype);
  auto u32 = up.to(dtype).to(torch::kFloat32);
  namespace F = torch::nn::functional;
  return (torch::silu(F::linear(x32, g32)) * F::linear(x32, u32)).to(x.scalar_type());  // (..., N)
}

}  // namespace troupe::kernels::reference
