#include <troupe/engine/optimizer.hpp>

#include <set>

#include <troupe/common/error.hpp>
#include <troupe/kernels/fused_adamw.hpp>

namespace troupe::engine {

ParamGroup param_group_of(const std::string& name, const torch::Tensor& parameter) {
  if (name.find("lora_A") != std::string::npos || name.find("lora_B") != std::string::npos) return ParamGroup::Lora;
  return parameter.dim() <= 1 ? ParamGroup::NoDecay : ParamGroup::Decay;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const OptimizerOptions& options) {
  std::array<std::vector<torch::Tensor>, 3> groups;
  for (const auto& item : unique_named_parameters(model)) {
    if (!item.value().requires_grad()) continue;
    groups[static_cast<size_t>(param_group_of(item.key(), item.value()))].push_back(item.value());
  }
  return make_adamw(groups, options);
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const std::array<std::vector<torch::Tensor>, 3>& groups,
                                                const OptimizerOptions& options) {
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
    if (!groups[static_cast<size_t>(g)].empty())
      param_groups.emplace_back(groups[static_cast<size_t>(g)], adamw(lr[g], decay[g]));
  if (param_groups.empty()) throw Error("optimizer: the model has no trainable parameter");
  return std::make_unique<FusedAdamW>(param_groups, *adamw(options.learning_rate, options.weight_decay));
}

namespace {

/// What fused_adamw reads in place: contiguous fp32 parameter, gradient and moments.
bool kernel_takes(const torch::Tensor& p, const torch::optim::AdamWParamState& state) {
  auto fp32_dense = [](const torch::Tensor& t) { return t.scalar_type() == torch::kFloat32 && t.is_contiguous(); };
  return fp32_dense(p) && p.grad().scalar_type() == torch::kFloat32 && fp32_dense(state.exp_avg()) &&
         fp32_dense(state.exp_avg_sq());
}

}  // namespace

torch::Tensor FusedAdamW::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    if (options.amsgrad()) throw Error("FusedAdamW: amsgrad is not supported; use torch::optim::AdamW");
    kernels::AdamWHyper hyper;
    hyper.lr = options.lr();
    hyper.beta1 = std::get<0>(options.betas());
    hyper.beta2 = std::get<1>(options.betas());
    hyper.eps = options.eps();
    hyper.weight_decay = options.weight_decay();
    // fused: the kernel's lists; other: the same update in LibTorch ops.
    struct Lists {
      std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs;
      std::vector<int64_t> steps;
    } fused, other;
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;  // as torch: no update and no state without a gradient
      TORCH_CHECK(!p.grad().is_sparse(), "AdamW does not support sparse gradients");
      auto& slot = state()[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*slot);
      s.step(s.step() + 1);
      auto& lists = kernel_takes(p, s) ? fused : other;
      lists.params.push_back(p);
      lists.grads.push_back(p.grad());
      lists.exp_avgs.push_back(s.exp_avg());
      lists.exp_avg_sqs.push_back(s.exp_avg_sq());
      lists.steps.push_back(s.step());
    }
    if (!fused.params.empty())
      kernels::fused_adamw(fused.params, fused.grads, fused.exp_avgs, fused.exp_avg_sqs, fused.steps, hyper);
    if (!other.params.empty())
      kernels::reference::fused_adamw(other.params, other.grads, other.exp_avgs, other.exp_avg_sqs, other.steps,
                                      hyper);
  }
  return loss;
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
