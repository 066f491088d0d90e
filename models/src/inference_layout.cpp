#include <troupe/models/inference_layout.hpp>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::models {
namespace {

bool same_shape(const kernels::PackedLinear& kept, const kernels::PackedLinear& fresh) {
  return kept.dtype == fresh.dtype && kept.in_features == fresh.in_features &&
         kept.out_features == fresh.out_features && kept.data.device() == fresh.data.device() &&
         kept.bias.defined() == fresh.bias.defined();
}

}  // namespace

void InferenceLayout::enter(CausalLMImpl& model, torch::ScalarType dtype) {
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16)
    throw Error(std::string("inference layout: the inference dtype must be fp32 or bf16, not ") + c10::toString(dtype));
  torch::NoGradGuard no_grad;
  auto layers = model.linear_layers();
  if (packed_.size() != layers.size()) packed_.assign(layers.size(), nullptr);
  lora_layers_ = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    auto& linear = layers[i].second;
    auto [weight, bias] = linear->weight_to_pack();  // (N, K), (N) or undefined
    auto fresh = kernels::pack_linear(weight, bias, dtype);
    auto& kept = packed_[i];
    if (kept && same_shape(*kept, fresh)) {
      kept->data.copy_(fresh.data);  // keep the allocation a training step did not free
      if (kept->bias.defined()) kept->bias.copy_(fresh.bias);
    } else {
      kept = std::make_shared<kernels::PackedLinear>(std::move(fresh));
    }
    if (linear->has_lora() && linear->lora_enabled()) ++lora_layers_;
    linear->set_packed(kept);
  }
  attached_ = true;
}

void InferenceLayout::leave(CausalLMImpl& model) {
  for (auto& [name, linear] : model.linear_layers()) linear->set_packed(nullptr);
  attached_ = false;
}

void InferenceLayout::release() { packed_.clear(); }

int64_t InferenceLayout::bytes() const {
  int64_t total = 0;
  for (const auto& p : packed_)
    if (p) total += p->bytes();
  return total;
}

bool has_inference_layout(CausalLMImpl& model) {
  auto layers = model.linear_layers();
  if (layers.empty()) return false;
  for (auto& [name, linear] : layers)
    if (!linear->packed()) return false;
  return true;
}

ScopedInferenceLayout::ScopedInferenceLayout(CausalLMImpl& model, torch::ScalarType dtype) : model_(model) {
  if (has_inference_layout(model)) return;
  layout_ = std::make_unique<InferenceLayout>();
  layout_->enter(model, dtype);
}

ScopedInferenceLayout::~ScopedInferenceLayout() {
  if (layout_) layout_->leave(model_);
}

torch::ScalarType resolve_inference_dtype(CausalLMImpl& model, std::optional<torch::ScalarType> requested) {
  if (requested) return *requested;
  return model.input_embedding_weight().scalar_type() == torch::kBFloat16 ? torch::kBFloat16 : torch::kFloat32;
}

torch::ScalarType inference_dtype_from_name(const std::string& name, const std::string& where) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  throw Error(where + ": the inference dtype must be fp32 or bf16, got \"" + name + "\"");
}

}  // namespace troupe::models
