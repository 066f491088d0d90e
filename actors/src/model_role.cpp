/// ModelRole: generate and score with troupe::models.
#include "model_role.hpp"

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/actors/role_factories.hpp>
#include <troupe/common/error.hpp>
#include <troupe/models/pretrained.hpp>

namespace troupe::actors {
namespace {

bool needs_value_head(const std::string& role) { return role == "critic" || role == "reward"; }

}  // namespace

ModelRole::ModelRole(models::CausalLM model, std::string role, models::GenerationOptions generation)
    : model_(std::move(model)), role_(std::move(role)), generation_(std::move(generation)) {
  if (!model_) throw Error("ModelRole: no model for role " + role_);
  if (needs_value_head(role_) && !model_->has_value_head()) model_->add_value_head();
  model_->eval();
}

std::shared_ptr<ModelRole> ModelRole::load_from(const std::string& dir, const std::string& role,
                                                models::GenerationOptions generation, const std::string& device) {
  models::LoadOptions options;
  options.device = torch::Device(device);
  return std::make_shared<ModelRole>(models::load_pretrained(dir, options), role, std::move(generation));
}

TensorBatch ModelRole::generate(const TensorBatch& prompts) {
  const auto device = model_->parameters().front().device();
  auto ids = require_tensor(prompts, keys::input_ids, "ModelRole::generate").to(device);  // (B, T0)
  auto mask = require_tensor(prompts, keys::attention_mask, "ModelRole::generate").to(device);  // (B, T0)
  auto out = models::generate(*model_, ids, mask, generation_);
  return {{keys::sequences, out.sequences},                                         // (B, T)
          {keys::attention_mask, out.attention_mask},                               // (B, T)
          {keys::prompt_length, torch::full({ids.size(0)}, out.prompt_length, torch::kLong)}};  // (B)
}

TensorBatch ModelRole::score(const TensorBatch& batch) {
  torch::NoGradGuard no_grad;
  const auto device = model_->parameters().front().device();
  auto sequences = require_tensor(batch, keys::sequences, "ModelRole::score").to(device);  // (B, T)
  auto mask = require_tensor(batch, keys::attention_mask, "ModelRole::score").to(device);  // (B, T)
  if (role_ == "actor" || role_ == "policy" || role_ == "reference") {
    auto logits = model_->forward(sequences, mask);  // (B, T, V)
    auto logprobs = torch::log_softmax(logits.slice(1, 0, -1).to(torch::kFloat), -1)
                        .gather(-1, sequences.slice(1, 1).unsqueeze(-1))
                        .squeeze(-1);  // (B, T-1)
    return {{role_ == "reference" ? keys::ref_logprobs : keys::logprobs, logprobs}};
  }
  models::DecoderInputs inputs;
  inputs.input_ids = sequences;
  inputs.attention_mask = mask;
  auto values = model_->values(model_->hidden_states(inputs)).to(torch::kFloat);  // (B, T)
  if (role_ == "critic") return {{keys::values, values.slice(1, 0, -1)}};  // (B, T-1)
  if (role_ == "reward") {
    auto positions = torch::arange(sequences.size(1), sequences.options()).unsqueeze(0);  // (1, T)
    auto last = (positions * (mask > 0)).argmax(1, /*keepdim=*/true);                     // (B, 1)
    return {{keys::reward_score, values.gather(1, last).squeeze(1)}};                         // (B)
  }
  throw Error("ModelRole: role \"" + role_ + "\" does not score");
}

std::string ModelRole::describe() const {
  const auto& config = model_->config();
  return config.model_type + " (" + std::to_string(config.num_layers) + " layers) as " + role_;
}

RoleFactories builtin_role_factories() {
  RoleFactories factories;
  factories["model"] = [](const RoleSpec& spec, ProcessRoles&) -> std::shared_ptr<RoleModel> {
    auto option = [&](const std::string& name, const std::string& fallback) {
      auto found = spec.options.find(name);
      return found == spec.options.end() ? fallback : found->second;
    };
    const auto dir = option("model", "");
    if (dir.empty()) throw Error("role factory \"model\": option \"model\" (a Hugging Face directory) is missing");
    models::GenerationOptions generation;
    generation.max_new_tokens = std::stoll(option("max_new_tokens", "16"));
    return ModelRole::load_from(dir, spec.id.role, generation, option("device", "cpu"));
  };
  return factories;
}

}  // namespace troupe::actors
