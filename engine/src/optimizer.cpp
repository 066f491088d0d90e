#include <troupe/engine/optimizer.hpp>

#include <set>

#include <troupe/common/error.hpp>

namespace troupe::engine {

ParamGroup param_group_of(const std::string& name, const torch::Tensor& parameter) {
  if (name.find("lora_A") != std::string::npos || name.find("lora_B") != std::string::npos) return ParamGroup::Lora;
  return parameter.dim() <= 1 ? ParamGroup::NoDecay : ParamGroup::Decay;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const OptimizerOptions& options) {
  std::vector<torch::Tensor> groups[3];
  for (const auto& item : unique_named_parameters(model)) {
    if (!item.value().requires_grad()) continue;
    groups[static_cast<int>(param_group_of(item.key(), item.value()))].push_back(item.value());
  }
  auto adamw = [&](double lr, double decay) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(lr)
                                                            .betas({options.beta1, options.beta2})
                                                            .eps(options.eps)
                                                            .weight_decay(decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  const double lr[3] = {options.learning_rate, options.learning_rate, options.lora_learning_rate};
  const double decay[3] = {options.weight_decay, 0.0, options.weight_decay};
  for (int g = 0; g < 3; ++g)
    if (!groups[g].empty()) param_groups.emplace_back(groups[g], adamw(lr[g], decay[g]));
  if (param_groups.empty()) throw Error("optimizer: the model has no trainable parameter");
  return std::make_unique<torch::optim::AdamW>(param_groups, *adamw(options.learning_rate, options.weight_decay));
}

torch::OrderedDict<std::string, torch::Tensor> unique_named_parameters(const torch::nn::Module& module) {
  torch::OrderedDict<std::string, torch::Tensor> unique;
  std::set<const void*> seen;
  for (const auto& item : module.named_parameters())
    if (seen.insert(item.value().unsafeGetTensorImpl()).second) unique.insert(item.key(), item.value());
  return unique;
}

std::vector<double> learning_rates(const torch::optim::Optimizer& optimizer) {
  std::vector<double> rates;
  for (const auto& group : optimizer.param_groups()) rates.push_back(group.options().get_lr());
  return rates;
}

}  // namespace troupe::engine
