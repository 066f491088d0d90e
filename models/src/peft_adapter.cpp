#include <troupe/models/peft_adapter.hpp>

#include <cmath>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/models/safetensors.hpp>

namespace troupe::models {
namespace {

bool is_adapter(const std::string& name) {
  auto ends_with = [&](const char* suffix) {
    const std::string s(suffix);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with(".lora_A") || ends_with(".lora_B");
}

/// Why `model` cannot be written as a PEFT adapter; empty when it can.
std::string not_exportable_because(CausalLMImpl& model) {
  bool adapted = false;
  for (auto& [name, linear] : model.linear_layers()) adapted = adapted || linear->has_lora();
  if (!adapted) return "it has no LoRA adapters";
  if (model.has_value_head()) return "it has a value head (PEFT's CAUSAL_LM adapters are for language models)";
  if (model.name_or_path().empty()) return "it was not loaded from a Hugging Face directory (no base to name)";
  for (const auto& item : model.named_parameters())
    if (item.value().requires_grad() && !is_adapter(item.key()))
      return "parameter " + item.key() + " trains besides the adapters (the base is not frozen: --only_optimize_lora)";
  return "";
}

/// 1 rather than 1.0 when whole, as PEFT writes its (integer) default.
nlohmann::json number(double value) {
  if (value == std::floor(value) && std::abs(value) < 1e15) return static_cast<int64_t>(value);
  return value;
}

}  // namespace

bool peft_exportable(CausalLMImpl& model) { return not_exportable_because(model).empty(); }

void save_peft_adapter(CausalLMImpl& model, const std::filesystem::path& dir) {
  if (const auto why = not_exportable_because(model); !why.empty())
    throw Error(dir.string() + ": cannot write the model as a PEFT adapter: " + why);
  TensorMap tensors;
  nlohmann::json targets = nlohmann::json::array();
  std::string first;
  int64_t rank = 0;
  double alpha = 0, dropout = 0;
  bool fan_in_fan_out = false;
  for (auto& [name, linear] : model.linear_layers()) {
    if (!linear->has_lora()) continue;
    if (first.empty()) {
      first = name;
      rank = linear->lora_rank();
      alpha = linear->lora_alpha();
      dropout = linear->lora_dropout();
      fan_in_fan_out = linear->options().transposed();  // GPT-2's Conv1D stores (in, out)
    } else if (linear->lora_rank() != rank || linear->lora_alpha() != alpha || linear->lora_dropout() != dropout ||
               linear->options().transposed() != fan_in_fan_out) {
      throw Error(dir.string() + ": the adapter of " + name + " differs from that of " + first +
                  " in rank, alpha, dropout or storage; one PEFT config cannot describe both");
    }
    // PEFT's keys without the adapter name ("default"), under PeftModel's base_model.model.
    const auto key = "base_model.model." + name;
    tensors[key + ".lora_A.weight"] = linear->lora_A.detach().contiguous();  // (r, in)
    tensors[key + ".lora_B.weight"] = linear->lora_B.detach().contiguous();  // (out, r)
    targets.push_back(name);
  }
  const nlohmann::json config{{"peft_type", "LORA"},
                              {"task_type", "CAUSAL_LM"},
                              {"base_model_name_or_path", model.name_or_path()},
                              {"r", rank},
                              {"lora_alpha", number(alpha)},
                              {"lora_dropout", dropout},
                              {"target_modules", targets},
                              {"bias", "none"},
                              {"fan_in_fan_out", fan_in_fan_out},
                              {"modules_to_save", nullptr},
                              {"init_lora_weights", true},
                              {"use_rslora", false},
                              {"use_dora", false},
                              {"inference_mode", true}};
  std::filesystem::create_directories(dir);
  write_safetensors(dir / "adapter_model.safetensors", tensors);
  write_file_atomically(dir / "adapter_config.json", config.dump(2) + "\n");
}

}  // namespace troupe::models
