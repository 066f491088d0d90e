#pragma once
/// LoRA adapters as a PEFT directory (Hugging Face `peft`): adapter_config.json and
/// adapter_model.safetensors, which `PeftModel.from_pretrained(base, dir)` applies to
/// the base model. PEFT scales an adapter by lora_alpha / r, as troupe does.
#include <filesystem>

#include <troupe/models/causal_lm.hpp>

namespace troupe::models {

/// Where a model directory keeps its PEFT adapter: `<dir>/adapter/`.
inline constexpr const char* kPeftAdapterDir = "adapter";

/// Whether `model` is a LoRA over a frozen base that PEFT can rebuild: it has adapters,
/// every trainable parameter is one, it has no value head (PEFT's CAUSAL_LM task) and it
/// knows its base directory (name_or_path()).
bool peft_exportable(CausalLMImpl& model);

/// Writes the adapters of `model` (unfused, as trained) into `dir` with
/// base_model_name_or_path = model.name_or_path(). Keys are PEFT's:
/// "base_model.model.<layer>.lora_A.weight" (r, in) and ".lora_B.weight" (out, r);
/// GPT-2's Conv1D layers are marked fan_in_fan_out. Throws troupe::Error when the model
/// is not peft_exportable() (saying why) or its adapters differ in rank or alpha.
void save_peft_adapter(CausalLMImpl& model, const std::filesystem::path& dir);

}  // namespace troupe::models
