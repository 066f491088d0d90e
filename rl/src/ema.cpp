#include <troupe/rl/ema.hpp>

#include <sstream>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::rl {
namespace {

const torch::Tensor& lookup(const NamedTensors& parameters, const std::string& name, const char* where) {
  const torch::Tensor* found = parameters.find(name);
  if (!found) throw Error(std::string(where) + ": no parameter named '" + name + "'");
  return *found;
}

void check_shape(const torch::Tensor& average, const torch::Tensor& param, const std::string& name,
                 const char* where) {
  if (average.sizes() != param.sizes()) {
    std::ostringstream out;
    out << where << ": parameter '" << name << "' has shape " << param.sizes() << ", the average "
        << average.sizes();
    throw Error(out.str());
  }
}

}  // namespace

NamedTensors trainable_parameters(const NamedTensors& parameters) {
  NamedTensors trainable;
  for (const auto& item : parameters)
    if (item.value().requires_grad()) trainable.insert(item.key(), item.value());
  return trainable;
}

Ema::Ema(const NamedTensors& parameters, EmaOptions options) : options_(options) {
  if (!(options_.beta >= 0.0 && options_.beta <= 1.0))
    throw Error("Ema: beta must be in [0, 1], got " + std::to_string(options_.beta));
  torch::NoGradGuard no_grad;
  for (const auto& item : parameters) {
    const auto& param = item.value();
    auto average = param.detach().to(options_.device.value_or(param.device()),
                                     options_.dtype.value_or(param.scalar_type()),
                                     /*non_blocking=*/false, /*copy=*/true);
    averages_.insert(item.key(), average);
  }
}

void Ema::update(const NamedTensors& parameters) {
  torch::NoGradGuard no_grad;
  for (auto& item : averages_) {
    auto& average = item.value();
    const auto& param = lookup(parameters, item.key(), "Ema::update");
    check_shape(average, param, item.key(), "Ema::update");
    // lerp(ema, theta, 1 - beta) = ema + (1 - beta)(theta - ema) = beta*ema + (1 - beta)*theta
    average.lerp_(param.detach().to(average.device(), average.scalar_type()), 1.0 - options_.beta);
  }
  ++updates_;
}

int64_t Ema::bytes() const {
  int64_t total = 0;
  for (const auto& item : averages_) total += item.value().numel() * static_cast<int64_t>(item.value().element_size());
  return total;
}

void Ema::copy_to(const NamedTensors& parameters) const {
  torch::NoGradGuard no_grad;
  for (const auto& item : averages_) {
    auto param = lookup(parameters, item.key(), "Ema::copy_to");
    check_shape(item.value(), param, item.key(), "Ema::copy_to");
    param.copy_(item.value());
  }
}

void Ema::restore(const NamedTensors& averages, int64_t updates) {
  torch::NoGradGuard no_grad;
  for (auto& item : averages_) {
    const auto* saved = averages.find(item.key());
    if (!saved) throw Error("EMA checkpoint: no average for " + item.key());
    if (saved->sizes() != item.value().sizes()) throw Error("EMA checkpoint: " + item.key() + " has another shape");
    item.value().copy_(*saved);
  }
  updates_ = updates;
}

}  // namespace troupe::rl
