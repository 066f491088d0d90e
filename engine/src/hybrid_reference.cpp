#include <troupe/engine/hybrid_scoring.hpp>

#include <map>
#include <unordered_set>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/frozen_weights.hpp>

namespace troupe::engine {
namespace {

bool is_lora_parameter(const std::string& name) {
  return name.find(".lora_A") != std::string::npos || name.find(".lora_B") != std::string::npos;
}

/// Bytes of the parameters that are not LoRA adapters, each storage once.
int64_t base_parameter_bytes(models::CausalLMImpl& model) {
  std::unordered_set<const void*> seen;
  int64_t total = 0;
  for (const auto& item : model.named_parameters()) {
    if (is_lora_parameter(item.key())) continue;
    const auto& p = item.value();
    if (seen.insert(p.storage().unsafeGetStorageImpl()).second) total += p.numel() * p.element_size();
  }
  return total;
}

/// The first base parameter that requires grad, or "" when the base is frozen.
std::string trainable_base_parameter(models::CausalLMImpl& model) {
  for (const auto& item : model.named_parameters()) {
    if (!is_lora_parameter(item.key()) && item.value().requires_grad()) return item.key();
  }
  return {};
}

struct ShareDecision {
  bool share = false;
  std::string reason;
};

/// Whether the actor's base (adapters off) is the same function as the actor now and
/// stays fixed while the actor trains: only then may the reference share it.
ShareDecision decide_sharing(models::CausalLMImpl& actor) {
  bool any_adapter = false;
  for (auto& [name, linear] : actor.linear_layers()) {
    if (!linear->has_lora()) continue;
    any_adapter = true;
    if (linear->lora_fused()) return {false, "the actor's adapters are fused into its weights (" + name + ")"};
    if (linear->lora_enabled() && linear->lora_B.count_nonzero().item<int64_t>() != 0) {
      return {false, "the actor's adapters are already trained (" + name + ".lora_B != 0)"};
    }
  }
  if (!any_adapter) return {false, "the actor has no LoRA adapters"};
  if (auto name = trainable_base_parameter(actor); !name.empty()) {
    return {false, "the actor's base weights train too (" + name + " requires grad; see only_optimize_lora)"};
  }
  return {true, "LoRA actor with a frozen base: the reference is the base with adapters off"};
}

/// Turns the shared actor into its base for one forward and puts everything back after,
/// also when the forward throws.
class BaseModelScope {
 public:
  explicit BaseModelScope(models::CausalLMImpl& actor) : actor_(actor), was_training_(actor.is_training()) {
    for (auto& [name, linear] : actor_.linear_layers()) {
      if (!linear->has_lora()) continue;
      if (linear->lora_fused()) {
        throw Error("ReferencePolicy: the actor's adapters are fused into its weights (" + name +
                    "); score the reference outside generation");
      }
      enabled_[name] = linear->lora_enabled();
      linear->set_lora_enabled(false);
    }
    actor_.eval();
  }
  ~BaseModelScope() {
    for (auto& [name, linear] : actor_.linear_layers()) {
      if (auto it = enabled_.find(name); it != enabled_.end()) linear->set_lora_enabled(it->second);
    }
    actor_.train(was_training_);
  }
  BaseModelScope(const BaseModelScope&) = delete;
  BaseModelScope& operator=(const BaseModelScope&) = delete;

 private:
  models::CausalLMImpl& actor_;
  bool was_training_;
  std::map<std::string, bool> enabled_;
};

}  // namespace

bool reference_can_share(models::CausalLMImpl& actor) { return decide_sharing(actor).share; }

models::CausalLM frozen_copy(models::CausalLMImpl& source) {
  auto copy = models::make_causal_lm(source.config());
  if (source.has_value_head()) copy->add_value_head();
  copy->to(source.input_embedding_weight().device());
  torch::NoGradGuard no_grad;
  auto source_parameters = source.named_parameters();
  std::unordered_set<const void*> done;  // tied weights are one tensor under two names
  for (auto& item : copy->named_parameters()) {
    const auto* from = source_parameters.find(item.key());
    if (!from) throw Error("frozen_copy: the source model has no parameter " + item.key());
    if (!done.insert(item.value().unsafeGetTensorImpl()).second) continue;
    item.value().set_data(from->detach().clone());  // same dtype and device as the source
  }
  auto source_buffers = source.named_buffers();
  for (auto& item : copy->named_buffers()) {
    if (const auto* from = source_buffers.find(item.key())) item.value().set_data(from->detach().clone());
  }
  // The copy has no adapters: fold the source's live (enabled, unfused) ones in.
  std::map<std::string, models::Linear> copy_linears;
  for (auto& [name, linear] : copy->linear_layers()) copy_linears.emplace(name, linear);
  for (auto& [name, linear] : source.linear_layers()) {
    if (!linear->has_lora() || linear->lora_fused() || !linear->lora_enabled()) continue;
    auto& weight = copy_linears.at(name)->weight;
    weight.add_(linear->lora_delta().to(weight.dtype()));
  }
  for (auto& p : copy->parameters()) p.set_requires_grad(false);
  copy->eval();
  return copy;
}

ReferencePolicy::ReferencePolicy(models::CausalLM actor, std::shared_ptr<std::mutex> model_mutex,
                                 torch::ScalarType compute_dtype)
    : model_mutex_(std::move(model_mutex)), compute_dtype_(compute_dtype) {
  if (!actor) throw Error("ReferencePolicy: no actor model given");
  auto decision = decide_sharing(*actor);
  reason_ = decision.reason;
  if (decision.share) {
    kind_ = ReferenceKind::SharedBase;
    model_ = std::move(actor);
    saved_bytes_ = base_parameter_bytes(*model_);
  } else {
    kind_ = ReferenceKind::FrozenCopy;
    model_ = frozen_copy(*actor);
    if (compute_dtype_ != torch::kFloat32) models::store_frozen_linears_in(*model_, compute_dtype_);
    own_bytes_ = parameter_bytes(*model_);
  }
}

torch::Tensor ReferencePolicy::logprobs(const torch::Tensor& sequences, const torch::Tensor& mask,
                                        const ScoringOptions& options) {
  std::unique_lock<std::mutex> lock;
  if (model_mutex_) lock = std::unique_lock<std::mutex>(*model_mutex_);
  torch::NoGradGuard no_grad;
  AutocastScope autocast(model_->parameters().front().device().type(), compute_dtype_);
  if (kind_ == ReferenceKind::FrozenCopy) {
    const auto device = model_->parameters().front().device();  // may be offloaded
    return sequence_logprobs(*model_, sequences.to(device), mask.to(device), options).to(sequences.device());
  }
  if (auto name = trainable_base_parameter(*model_); !name.empty()) {
    throw Error("ReferencePolicy: the shared actor's base weight " + name +
                " now requires grad, so the reference would drift; freeze the base (only_optimize_lora) "
                "or build the reference as a copy");
  }
  BaseModelScope base(*model_);
  return sequence_logprobs(*model_, sequences, mask, options);
}

bool ReferencePolicy::offload_to(const torch::Device& device) {
  if (kind_ != ReferenceKind::FrozenCopy) return false;
  std::unique_lock<std::mutex> lock;
  if (model_mutex_) lock = std::unique_lock<std::mutex>(*model_mutex_);
  model_->to(device);
  return true;
}

std::string ReferencePolicy::memory_summary() const {
  if (kind_ == ReferenceKind::SharedBase) {
    return "reference model: shares the actor's weights (" + reason_ + "); " + format_bytes(saved_bytes_) +
           " of parameters not duplicated";
  }
  return "reference model: frozen copy (" + reason_ + "); holds " + format_bytes(own_bytes_) + " of parameters";
}

}  // namespace troupe::engine
