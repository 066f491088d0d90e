#pragma once
/// AdamW over a model's parameters in DeepSpeed-Chat's groups: weights with weight
/// decay, biases and norm weights without, LoRA adapters with their own learning rate.
#include <array>
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

/// torch::optim::AdamW whose step() runs kernels::fused_adamw over each parameter
/// group: one pass per tensor instead of torch's dozen element-wise ops, with torch's
/// arithmetic (its sqrt may round 1 ulp differently, so parameters agree to ~1e-7
/// relative). The state is torch's own (AdamWParamState: step, exp_avg, exp_avg_sq per
/// parameter, created at its first gradient), and so are the options and the
/// serialisation: checkpoints, resumes, ZeRO sharding and memory accounting see an AdamW.
/// A parameter the kernel does not take (not contiguous fp32) is stepped by the same
/// formula in LibTorch ops; amsgrad is refused (troupe::Error).
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

/// AdamW with up to three groups (decay, no-decay, LoRA; empty groups left out), only
/// over parameters with requires_grad, as a FusedAdamW. Throws troupe::Error when nothing is
/// trainable.
std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const OptimizerOptions& options);

/// The same AdamW over tensors already sorted into the groups, indexed by ParamGroup
/// (ZeRO stage 3 steps this rank's flat chunks through it). Throws troupe::Error when all
/// groups are empty.
std::unique_ptr<torch::optim::AdamW> make_adamw(const std::array<std::vector<torch::Tensor>, 3>& groups,
                                                const OptimizerOptions& options);

/// The module's parameters with each tensor once: a tied weight (the embedding that is
/// also the LM head) is listed under its first name only, so it is clipped and
/// updated once per step.
torch::OrderedDict<std::string, torch::Tensor> unique_named_parameters(const torch::nn::Module& module);

/// Every group's current learning rate, in group order.
std::vector<double> learning_rates(const torch::optim::Optimizer& optimizer);

}  // namespace troupe::engine
