#include <troupe/engine/train_engine.hpp>

#include <cmath>

#include <ATen/autocast_mode.h>
#include <torch/nn/utils/clip_grad.h>

#include <troupe/common/error.hpp>

namespace troupe::engine {

torch::ScalarType parse_compute_dtype(const std::string& name, const std::string& flag) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp16" || name == "float16")
    throw Error(flag + " fp16: not supported for training (it needs loss scaling); use bf16 or fp32");
  throw Error(flag + ": unknown dtype \"" + name + "\" (known: fp32, bf16)");
}

AutocastScope::AutocastScope(torch::DeviceType device, torch::ScalarType dtype) : device_(device) {
  if (dtype == torch::kFloat32) return;
  active_ = true;
  was_enabled_ = at::autocast::is_autocast_enabled(device);
  previous_dtype_ = at::autocast::get_autocast_dtype(device);
  at::autocast::set_autocast_dtype(device, dtype);
  at::autocast::set_autocast_enabled(device, true);
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  at::autocast::set_autocast_enabled(device_, was_enabled_);
  at::autocast::set_autocast_dtype(device_, previous_dtype_);
  if (!was_enabled_) at::autocast::clear_cache();
}

TrainEngine::TrainEngine(models::CausalLM model, TrainOptions options)
    : model_(std::move(model)), options_(std::move(options)) {
  if (options_.gradient_accumulation_steps < 1)
    throw Error("--gradient_accumulation_steps must be at least 1, got " +
                std::to_string(options_.gradient_accumulation_steps));
  optimizer_ = make_adamw(*model_, options_.optimizer);
  scheduler_ = std::make_unique<LrScheduler>(*optimizer_, options_.schedule);
  for (const auto& item : unique_named_parameters(*model_))
    if (item.value().requires_grad()) trainable_.push_back(item.value());
  model_->train();
}

MicroStep TrainEngine::micro_step(const std::function<torch::Tensor(models::CausalLMImpl&)>& loss_fn) {
  model_->train();
  MicroStep result;
  torch::Tensor loss;
  {
    AutocastScope autocast(model_->parameters().front().device().type(), options_.compute_dtype);
    loss = loss_fn(*model_).to(torch::kFloat32);
  }
  result.loss = loss.item<double>();
  if (!std::isfinite(result.loss))
    throw Error("training loss is " + std::to_string(result.loss) + " at step " + std::to_string(global_step_) +
                " (micro-batch " + std::to_string(micro_steps_) + "); stopping before the update");
  (loss / static_cast<double>(options_.gradient_accumulation_steps)).backward();
  ++micro_steps_;
  if (micro_steps_ % options_.gradient_accumulation_steps != 0) return result;

  if (gradient_sync_) gradient_sync_(trainable_);
  // The norm is measured always (it is logged); clipping only when asked.
  const double max_norm = options_.max_grad_norm > 0 ? options_.max_grad_norm : std::numeric_limits<double>::infinity();
  result.grad_norm = torch::nn::utils::clip_grad_norm_(trainable_, max_norm);
  optimizer_->step();
  optimizer_->zero_grad();
  ++global_step_;
  scheduler_->set_step(global_step_);
  result.optimizer_stepped = true;
  return result;
}

void TrainEngine::evaluate(const std::function<void(models::CausalLMImpl&)>& fn) {
  model_->eval();
  {
    torch::NoGradGuard no_grad;
    AutocastScope autocast(model_->parameters().front().device().type(), options_.compute_dtype);
    fn(*model_);
  }
  model_->train();
}

void TrainEngine::set_progress(int64_t global_step, int64_t micro_steps) {
  global_step_ = global_step;
  micro_steps_ = micro_steps;
  scheduler_->set_step(global_step);
}

double TrainEngine::learning_rate() const { return optimizer_->param_groups().front().options().get_lr(); }

}  // namespace troupe::engine
