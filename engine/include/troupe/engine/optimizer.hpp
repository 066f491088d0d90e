#pragma once
/// AdamW over a model's parameters in DeepSpeed-Chat's groups: weights with weight
/// decay, biases and norm weights without, LoRA adapters with their own learning rate.
#include <memory>
#include <string>
#include <vector>

#include <torch/optim/adamw.h>

#include <troupe/models/causal_lm.hpp>

namespace troupe::engine {

struct OptimizerOptions {
  double learning_rate = 1e-3;
  double weight_decay = 0.0;
  /// The LoRA adapters' rate (DeepSpeed-Chat's `--lora_learning_rate`, default 5e-4).
  double lora_learning_rate = 5e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;  ///< DeepSpeed-Chat's AdamW betas
  double eps = 1e-8;
};

/// Which group a trainable parameter joins.
enum class ParamGroup { Decay, NoDecay, Lora };

/// Biases and norm weights (one-dimensional parameters) are not decayed; LoRA
/// adapters (`lora_A`, `lora_B`) get the LoRA rate and the decay.
ParamGroup param_group_of(const std::string& name, const torch::Tensor& parameter);

/// AdamW with up to three groups (decay, no-decay, LoRA; empty groups left out), only
/// over parameters with requires_grad. Throws troupe::Error when nothing is trainable.
std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const OptimizerOptions& options);

/// The module's parameters with each tensor once: a tied weight (the embedding that is
/// also the LM head) is listed under its first name only, so it is clipped and
/// updated once per step.
torch::OrderedDict<std::string, torch::Tensor> unique_named_parameters(const torch::nn::Module& module);

/// Every group's current learning rate, in group order.
std::vector<double> learning_rates(const torch::optim::Optimizer& optimizer);

}  // namespace troupe::engine
