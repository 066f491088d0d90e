#include <troupe/models/checkpointing.hpp>

#include <mutex>
#include <utility>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace troupe::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// The default generator's state on `device` (CPU, or the input's accelerator).
torch::Tensor generator_state(const torch::Device& device) {
  auto generator = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_generator_state(const torch::Device& device, const torch::Tensor& state) {
  auto generator = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

/// The random-number states a layer's forward started from, on the CPU and, for an
/// accelerator input, on its device: dropout draws from whichever the input lives on.
struct RngStates {
  static RngStates capture(const torch::Device& device) {
    RngStates states{device, generator_state(torch::kCPU), {}};
    if (!device.is_cpu()) states.device_state = generator_state(device);
    return states;
  }
  void restore() const {
    set_generator_state(torch::kCPU, cpu_state);
    if (device_state.defined()) set_generator_state(device, device_state);
  }
  torch::Device device;
  torch::Tensor cpu_state;
  torch::Tensor device_state;  // undefined for a CPU input
};

/// Replays `saved` for a recomputation, then puts back the states current before it,
/// so the backward leaves the generators where the rest of training expects them.
class RngReplay {
 public:
  explicit RngReplay(const RngStates& saved) : current_(RngStates::capture(saved.device)) { saved.restore(); }
  ~RngReplay() { current_.restore(); }
  RngReplay(const RngReplay&) = delete;
  RngReplay& operator=(const RngReplay&) = delete;

 private:
  RngStates current_;
};

/// The autocast setting of the forward (e.g. bf16 compute over fp32 weights), so the
/// recomputation runs in the same dtypes; the backward itself runs outside autocast.
struct AutocastState {
  static AutocastState capture(torch::DeviceType type) {
    return {type, at::autocast::is_autocast_enabled(type), at::autocast::get_autocast_dtype(type)};
  }
  void apply() const {
    at::autocast::set_autocast_dtype(type, dtype);
    at::autocast::set_autocast_enabled(type, enabled);
  }
  torch::DeviceType type;
  bool enabled;
  at::ScalarType dtype;
};

class AutocastReplay {
 public:
  explicit AutocastReplay(const AutocastState& saved) : current_(AutocastState::capture(saved.type)) { saved.apply(); }
  ~AutocastReplay() { current_.apply(); }
  AutocastReplay(const AutocastReplay&) = delete;
  AutocastReplay& operator=(const AutocastReplay&) = delete;

 private:
  AutocastState current_;
};

/// What the backward needs besides the saved input. Held by the autograd context as an
/// opaque capsule (its saved_data holds only IValues).
struct CheckpointState : torch::CustomClassHolder {
  CheckpointState(LayerFn layer, RngStates rng, AutocastState autocast, size_t parameters, RecomputeHooks recompute)
      : layer(std::move(layer)),
        rng(std::move(rng)),
        autocast(autocast),
        parameters(parameters),
        recompute(std::move(recompute)) {}
  LayerFn layer;
  RngStates rng;
  AutocastState autocast;
  size_t parameters;
  RecomputeHooks recompute;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  /// The parameters are inputs only so that the output requires grad when they do.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input, at::TensorList /*parameters*/,
                               c10::intrusive_ptr<CheckpointState> state) {
    torch::Tensor output;
    {
      torch::NoGradGuard no_grad;
      output = state->layer(input);
    }
    ctx->save_for_backward({input});
    ctx->saved_data["state"] = c10::IValue::make_capsule(std::move(state));
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto holder = ctx->saved_data["state"].toCapsule();
    const auto* state = static_cast<const CheckpointState*>(holder.get());
    const bool input_needs_grad = ctx->needs_input_grad(0);
    auto input = ctx->get_saved_variables()[0].detach().requires_grad_(input_needs_grad);
    if (state->recompute.before) state->recompute.before();
    torch::Tensor output;
    {
      RngReplay replay(state->rng);
      AutocastReplay autocast(state->autocast);
      torch::AutoGradMode grad_mode(true);
      output = state->layer(input);
    }
    // The parameters' gradients accumulate here, in a backward of its own; the outer
    // graph gets only the input's.
    if (output.requires_grad()) torch::autograd::backward({output}, {grad_outputs[0]});
    output = torch::Tensor();  // the recomputed graph (and the weights it holds) goes first
    if (state->recompute.after) state->recompute.after();
    variable_list grads(1 + state->parameters + 1);  // input, parameters, state
    if (input_needs_grad) grads[0] = input.grad();
    return grads;
  }
};

}  // namespace

torch::Tensor run_checkpointed(const LayerFn& layer, const torch::Tensor& input, at::TensorList parameters,
                               RecomputeHooks recompute) {
  if (!torch::GradMode::is_enabled()) return layer(input);
  auto state = c10::make_intrusive<CheckpointState>(layer, RngStates::capture(input.device()),
                                                    AutocastState::capture(input.device().type()), parameters.size(),
                                                    std::move(recompute));
  return CheckpointFunction::apply(input, parameters, std::move(state));
}

}  // namespace troupe::models
