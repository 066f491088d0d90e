#pragma once
/// Private pieces shared by the decoder families (opt.cpp, gpt2.cpp, llama.cpp).
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/kernels/decode_linear.hpp>
#include <troupe/models/causal_lm.hpp>
#include <troupe/models/partitioned_init.hpp>

namespace troupe::models {

CausalLM make_opt(const Config& config);
CausalLM make_gpt2(const Config& config);
CausalLM make_llama(const Config& config);

/// The activations Hugging Face names in configs.
inline torch::Tensor activation(const std::string& name, const torch::Tensor& x) {
  return kernels::reference::apply_activation(x, kernels::activation_from_name(name));
}

/// down_proj's input in Llama's MLP, act(gate(x)) * up(x): one fused kernel pass when
/// both layers compute with their inference copies and the activation is SiLU.
inline torch::Tensor gated_mlp_input(LinearImpl& gate, LinearImpl& up, kernels::Activation act, const torch::Tensor& x) {
  if (act == kernels::Activation::Silu && gate.uses_packed() && up.uses_packed() && !gate.packed()->bias.defined() &&
      !up.packed()->bias.defined())
    return kernels::decode_gated_linear(x, *gate.packed(), *up.packed());
  return gate.forward_activated(x, act) * up.forward(x);
}

/// Appends a decoder layer just built; inside a PartitionedInit scope it is partitioned
/// before the next one is built (partitioned_init.hpp).
template <typename LayerHolder>
void add_decoder_layer(torch::nn::ModuleList& layers, LayerHolder layer) {
  layers->push_back(layer);
  PartitionedInit::take_built_layer(*layer, static_cast<int64_t>(layers->size()) - 1);
}

inline torch::nn::LayerNorm layer_norm(int64_t size, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({size}).eps(eps));
}

}  // namespace troupe::models
