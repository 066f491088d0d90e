#pragma once
/// Private pieces shared by the decoder families (opt.cpp, gpt2.cpp, llama.cpp).
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/models/causal_lm.hpp>

namespace troupe::models {

CausalLM make_opt(const Config& config);
CausalLM make_gpt2(const Config& config);
CausalLM make_llama(const Config& config);

/// The activations Hugging Face names in configs.
inline torch::Tensor activation(const std::string& name, const torch::Tensor& x) {
  if (name == "relu") return torch::relu(x);
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return torch::gelu(x, "tanh");
  if (name == "gelu") return torch::gelu(x);
  if (name == "silu" || name == "swish") return torch::silu(x);
  throw Error("unsupported activation function \"" + name + "\"; supported: relu, gelu, gelu_new, silu");
}

inline torch::nn::LayerNorm layer_norm(int64_t size, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({size}).eps(eps));
}

}  // namespace troupe::models
