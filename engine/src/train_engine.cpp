#include <troupe/engine/train_engine.hpp>

#include <algorithm>
#include <cmath>
#include <map>

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

double TrainEngine::backward(const std::function<torch::Tensor(models::CausalLMImpl&)>& loss_fn) {
  model_->train();
  torch::Tensor loss;
  double value = 0;
  try {
    {
      AutocastScope autocast(model_->parameters().front().device().type(), options_.compute_dtype);
      loss = loss_fn(*model_);
      // Half-precision losses are reported and back-propagated from fp32; a float64 model
      // (the tests' exact comparisons) keeps its precision.
      if (loss.scalar_type() != torch::kDouble) loss = loss.to(torch::kFloat32);
    }
    value = loss.item<double>();
    if (!std::isfinite(value))
      throw Error("training loss is " + std::to_string(value) + " at step " + std::to_string(global_step_) +
                  " (micro-batch " + std::to_string(micro_steps_) + "); stopping before the update");
    (loss / static_cast<double>(options_.gradient_accumulation_steps)).backward();
  } catch (...) {
    finish_abandoned_prefetches();
    throw;
  }
  peak_gradient_bytes_ = std::max(peak_gradient_bytes_, gradient_bytes());
  // Stage 2 reduced most buckets during the backward; the rest now.
  if (zero2_) {
    zero2_->finish_backward();
    peak_gradient_bytes_ = std::max(peak_gradient_bytes_, zero2_->peak_gradient_bytes());
  }
  // The layers' gradients reduce-scattered during the backward; the kept-whole ones now.
  if (zero3_) zero3_->reduce_scatter_kept_gradients();
  return value;
}

MicroStep TrainEngine::partial_step(const std::function<torch::Tensor(models::CausalLMImpl&)>& loss_fn) {
  MicroStep result;
  result.loss = backward(loss_fn);
  return result;
}

MicroStep TrainEngine::micro_step(const std::function<torch::Tensor(models::CausalLMImpl&)>& loss_fn) {
  MicroStep result;
  result.loss = backward(loss_fn);
  ++micro_steps_;
  if (micro_steps_ % options_.gradient_accumulation_steps != 0) return result;

  // The norm is measured always (it is logged); clipping only when asked.
  const double max_norm = options_.max_grad_norm > 0 ? options_.max_grad_norm : std::numeric_limits<double>::infinity();
  if (zero3_) {
    result.grad_norm = zero3_->clip_gradients(max_norm);
  } else if (zero2_) {
    result.grad_norm = zero2_->clip_gradients(max_norm);
  } else {
    if (gradient_sync_) gradient_sync_(trainable_);
    result.grad_norm = torch::nn::utils::clip_grad_norm_(trainable_, max_norm);
  }
  if (zero2_) {
    zero2_->step(*optimizer_);
  } else {
    if (sharding_) {
      // AdamW skips a parameter without a gradient: no update and no state for it here.
      for (size_t i = 0; i < trainable_.size(); ++i)
        if (owners_[i] != sharding_->rank) trainable_[i].mutable_grad() = torch::Tensor();
    }
    optimizer_->step();
    if (sharding_) broadcast_owned_parameters();
  }
  if (zero3_) zero3_->gather_kept_parameters();
  optimizer_->zero_grad();
  ++global_step_;
  scheduler_->set_step(global_step_);
  result.optimizer_stepped = true;
  return result;
}

void TrainEngine::evaluate(const std::function<void(models::CausalLMImpl&)>& fn) {
  model_->eval();
  try {
    torch::NoGradGuard no_grad;
    AutocastScope autocast(model_->parameters().front().device().type(), options_.compute_dtype);
    fn(*model_);
  } catch (...) {
    finish_abandoned_prefetches();
    model_->train();
    throw;
  }
  model_->train();
}

void TrainEngine::finish_abandoned_prefetches() noexcept {
  if (!zero3_) return;
  try {
    zero3_->finish_prefetches();
  } catch (...) {
    // The pass's own error is the one to report; a gather that failed too adds nothing.
  }
}

void TrainEngine::set_progress(int64_t global_step, int64_t micro_steps) {
  global_step_ = global_step;
  micro_steps_ = micro_steps;
  scheduler_->set_step(global_step);
}

void TrainEngine::set_gradient_sync(GradientSync sync) {
  if (zero3_ && sync) throw Error("gradient sync: ZeRO stage 3 reduce-scatters the gradients itself");
  if (zero2_ && sync) throw Error("gradient sync: ZeRO stage 2 reduces the gradients onto their owners itself");
  gradient_sync_ = std::move(sync);
}

void TrainEngine::set_optimizer_sharding(OptimizerSharding sharding) {
  if (zero3_) throw Error("optimizer sharding: ZeRO stage 3 is already on for this engine");
  if (sharding.world < 1 || sharding.rank < 0 || sharding.rank >= sharding.world || !sharding.broadcast)
    throw Error("optimizer sharding: rank " + std::to_string(sharding.rank) + " of " + std::to_string(sharding.world) +
                (sharding.broadcast ? "" : " without a broadcast"));
  if (sharding.stage >= 2 && (!sharding.reduce_sum || !sharding.all_reduce_sum || !sharding.all_reduce_max))
    throw Error("optimizer sharding: stage " + std::to_string(sharding.stage) + " needs reduce_sum, all_reduce_sum "
                "and all_reduce_max");
  if (global_step_ > 0) throw Error("optimizer sharding must be set before the first optimizer step");
  if (sharding_) throw Error("optimizer sharding is already set for this engine");
  if (sharding.stage >= 2) {
    if (gradient_sync_) throw Error("optimizer sharding: stage 2 reduces the gradients itself; drop the gradient sync");
    // Gradients accumulated so far belong to the whole-parameter layout.
    optimizer_->zero_grad();
    Zero2Collectives collectives{sharding.rank, sharding.world, sharding.broadcast, sharding.reduce_sum,
                                 sharding.all_reduce_sum, sharding.all_reduce_max};
    zero2_ = std::make_unique<Zero2Partition>(model_, std::move(collectives), sharding.reduce_bucket_size);
    scheduler_.reset();  // it refers to the optimizer it replaces
    optimizer_ = make_adamw(zero2_->master_chunks(), options_.optimizer);
    scheduler_ = std::make_unique<LrScheduler>(*optimizer_, options_.schedule);
    scheduler_->set_step(global_step_);
    sharding_ = std::move(sharding);
    return;
  }
  // Largest parameters first, each to the rank holding the fewest elements so far (ties:
  // the lower rank): deterministic, so every rank computes the same owners.
  std::vector<size_t> order(trainable_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return trainable_[a].numel() > trainable_[b].numel(); });
  std::vector<int64_t> load(static_cast<size_t>(sharding.world), 0);
  owners_.assign(trainable_.size(), 0);
  for (const size_t i : order) {
    const auto least = std::min_element(load.begin(), load.end()) - load.begin();
    owners_[i] = static_cast<int>(least);
    load[static_cast<size_t>(least)] += trainable_[i].numel();
  }
  sharding_ = std::move(sharding);
}

void TrainEngine::set_zero3(Zero3Collectives collectives, std::shared_ptr<models::PartitionedLayers> built,
                            int prefetch_layers) {
  if (global_step_ > 0) throw Error("ZeRO stage 3 must be set before the first optimizer step");
  if (zero3_) throw Error("ZeRO stage 3 is already on for this engine");
  if (sharding_ || gradient_sync_)
    throw Error("ZeRO stage 3: the engine already has a gradient sync or optimizer sharding (stages 0-2)");
  // Gradients accumulated so far belong to whole parameters that are about to go.
  optimizer_->zero_grad();
  zero3_ = std::make_unique<Zero3Partition>(model_, std::move(collectives), std::move(built), prefetch_layers);
  scheduler_.reset();  // it refers to the optimizer it replaces
  optimizer_ = make_adamw(zero3_->master_chunks(), options_.optimizer);
  scheduler_ = std::make_unique<LrScheduler>(*optimizer_, options_.schedule);
  scheduler_->set_step(global_step_);
}

std::map<torch::ScalarType, std::vector<size_t>> TrainEngine::owned_by(int root) const {
  std::map<torch::ScalarType, std::vector<size_t>> owned;
  for (size_t i = 0; i < trainable_.size(); ++i)
    if (owners_[i] == root) owned[trainable_[i].scalar_type()].push_back(i);
  return owned;
}

void TrainEngine::broadcast_owned_parameters() {
  torch::NoGradGuard no_grad;
  for (int root = 0; root < sharding_->world; ++root) {
    // One flat buffer per dtype of the root's parameters: one broadcast each.
    for (const auto& [dtype, indices] : owned_by(root)) {
      std::vector<torch::Tensor> flat;
      for (const size_t i : indices) flat.push_back(trainable_[i].detach().reshape({-1}));
      auto buffer = torch::cat(flat);
      sharding_->broadcast(buffer, root);
      int64_t offset = 0;
      for (const size_t i : indices) {
        auto p = trainable_[i].detach();
        p.copy_(buffer.slice(0, offset, offset + p.numel()).view_as(p));
        offset += p.numel();
      }
    }
  }
}

int64_t TrainEngine::optimizer_state_bytes() const {
  int64_t bytes = 0;
  for (const auto& [key, state] : optimizer_->state()) {
    const auto* adamw = dynamic_cast<const torch::optim::AdamWParamState*>(state.get());
    if (!adamw) continue;
    for (const auto& t : {adamw->exp_avg(), adamw->exp_avg_sq(), adamw->max_exp_avg_sq()})
      if (t.defined()) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  }
  return bytes;
}

namespace {

int64_t bytes_of(const torch::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; }

}  // namespace

int64_t TrainEngine::parameter_bytes() const {
  if (zero3_) return zero3_->param_resident_bytes();
  int64_t bytes = 0;
  for (const auto& item : unique_named_parameters(*model_)) bytes += bytes_of(item.value());
  return bytes;
}

int64_t TrainEngine::gradient_bytes() const {
  int64_t bytes = 0;
  for (const auto& p : trainable_) bytes += bytes_of(p.grad());
  if (zero3_)
    for (const auto& group : zero3_->master_chunks())
      for (const auto& chunk : group) bytes += bytes_of(chunk.grad());
  if (zero2_)
    for (const auto& group : zero2_->master_chunks())
      for (const auto& chunk : group) bytes += bytes_of(chunk.grad());
  return bytes;
}

double TrainEngine::learning_rate() const { return optimizer_->param_groups().front().options().get_lr(); }

}  // namespace troupe::engine
