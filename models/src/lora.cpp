#include <troupe/models/lora.hpp>

#include <troupe/common/error.hpp>

namespace troupe::models {

std::vector<std::string> apply_lora(CausalLMImpl& model, const LoraOptions& options) {
  std::vector<std::string> adapted, all;
  for (auto& [name, linear] : model.linear_layers()) {
    if (name == "lm_head" || name == "v_head") continue;
    all.push_back(name);
    if (!options.module_filter.empty() && name.find(options.module_filter) == std::string::npos) continue;
    linear->enable_lora(options.rank, options.alpha, options.dropout);
    adapted.push_back(name);
  }
  if (adapted.empty()) {
    std::string examples;
    for (size_t i = 0; i < all.size() && i < 3; ++i) examples += (i ? ", " : "") + all[i];
    throw Error("--lora_module_name \"" + options.module_filter + "\" matches no linear layer (layers are named like " +
                examples + ")");
  }
  return adapted;
}

void fuse_lora(CausalLMImpl& model) {
  for (auto& [name, linear] : model.linear_layers()) linear->fuse_lora();
}

void unfuse_lora(CausalLMImpl& model) {
  for (auto& [name, linear] : model.linear_layers()) linear->unfuse_lora();
}

void set_lora_enabled(CausalLMImpl& model, bool enabled) {
  for (auto& [name, linear] : model.linear_layers()) linear->set_lora_enabled(enabled);
}

void only_optimize_lora(CausalLMImpl& model) {
  for (auto& item : model.named_parameters()) {
    const auto& name = item.key();
    const bool is_lora = name.find(".lora_A") != std::string::npos || name.find(".lora_B") != std::string::npos;
    item.value().set_requires_grad(is_lora);
  }
}

}  // namespace troupe::models
