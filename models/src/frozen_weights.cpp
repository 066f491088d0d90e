#include <troupe/models/frozen_weights.hpp>

#include <torch/torch.h>

namespace troupe::models {

int64_t store_frozen_linears_in(CausalLMImpl& model, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  int64_t saved = 0;
  auto narrow = [&](torch::Tensor& t) {
    if (!t.defined() || t.scalar_type() == dtype) return;
    const auto before = t.numel() * static_cast<int64_t>(t.element_size());
    t.set_data(t.to(dtype));  // the registered parameter is the same tensor: both see it
    saved += before - t.numel() * static_cast<int64_t>(t.element_size());
  };
  for (auto& [name, linear] : model.linear_layers()) {
    // A tied head shares the embedding's tensor, which is not autocast: leave it.
    if (linear->options().tied_weight() || linear->weight.requires_grad()) continue;
    // Biases stay: LibTorch's linear adds the bias to the narrowed product in place, so a
    // bias rounded first would give other bits; they are small.
    narrow(linear->weight);
  }
  return saved;
}

}  // namespace troupe::models
