#pragma once
/// An exponential moving average of a model's parameters (DeepSpeed-Chat's
/// `--enable_ema`: ema = beta * ema + (1 - beta) * theta after every update).
#include <optional>
#include <string>

#include <torch/ordered_dict.h>
#include <torch/types.h>

namespace troupe::rl {

using NamedTensors = torch::OrderedDict<std::string, torch::Tensor>;

struct EmaOptions {
  double beta = 0.992;
  /// Where the average lives; unset = beside each parameter. Put it on the CPU to keep
  /// accelerator memory for training.
  std::optional<torch::Device> device;
  /// Its dtype; unset = each parameter's. float32 keeps small (1 - beta) steps from
  /// vanishing in bfloat16.
  std::optional<torch::ScalarType> dtype;
};

/// The tensors of `parameters` that train (requires_grad). An EMA of a model with a
/// frozen base (LoRA with --only_optimize_lora) needs only these: a frozen tensor never
/// changes, so its average is itself, and copy_to() leaves it as it is.
NamedTensors trainable_parameters(const NamedTensors& parameters);

class Ema {
 public:
  /// Starts the average at a copy of `parameters` (e.g. module->named_parameters(), or
  /// trainable_parameters() of them).
  explicit Ema(const NamedTensors& parameters, EmaOptions options = {});

  /// ema = beta * ema + (1 - beta) * theta for every name, without autograd. Throws
  /// troupe::Error if a name is missing or a shape differs from the first call's.
  void update(const NamedTensors& parameters);

  /// Writes the average into `parameters` (every averaged name; others are left as
  /// they are), e.g. to save the EMA model.
  void copy_to(const NamedTensors& parameters) const;

  const NamedTensors& averages() const { return averages_; }
  double beta() const { return options_.beta; }
  int64_t updates() const { return updates_; }
  /// Puts saved averages (every averaged name, same shapes) and their update count
  /// back, to resume from a checkpoint. Throws troupe::Error naming a missing or
  /// reshaped tensor.
  void restore(const NamedTensors& averages, int64_t updates);
  /// The memory the averages hold.
  int64_t bytes() const;

 private:
  EmaOptions options_;
  NamedTensors averages_;
  int64_t updates_ = 0;
};

}  // namespace troupe::rl
