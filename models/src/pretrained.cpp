#include <troupe/models/pretrained.hpp>

#include <set>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/models/config.hpp>
#include <troupe/models/partitioned_init.hpp>
#include <troupe/models/safetensors.hpp>

namespace troupe::models {
namespace {

bool is_lora_parameter(const std::string& name) {
  return name.size() > 7 && (name.compare(name.size() - 7, 7, ".lora_A") == 0 || name.compare(name.size() - 7, 7, ".lora_B") == 0);
}

/// Buffers older transformers versions saved that carry no weights.
bool is_ignorable_extra(const std::string& name) {
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".attn.bias") || ends_with(".attn.masked_bias") || ends_with("rotary_emb.inv_freq");
}

const char* dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "float32";
    case torch::kFloat16: return "float16";
    case torch::kBFloat16: return "bfloat16";
    default: return "float32";
  }
}

}  // namespace

namespace {

/// load_weights; inside a PartitionedInit (`partitioned`), a partitioned layer's
/// parameter keeps the mapped tensor as its source instead of a copy, so a rank later
/// reads only its chunk's elements of it.
void load_weights(CausalLMImpl& model, const TensorMap& tensors, const std::string& source,
                  PartitionedInit* partitioned) {
  torch::NoGradGuard no_grad;
  const bool tied = model.config().tie_word_embeddings;
  std::set<std::string> used;
  for (auto& item : model.named_parameters()) {
    const auto& name = item.key();
    if (is_lora_parameter(name)) continue;
    if (tied && name == "lm_head.weight") continue;
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (name == "v_head.weight") continue;  // a critic starting from an SFT model
      throw Error(source + ": missing weight \"" + name + "\" for a " + family_name(model.config().family) + " model");
    }
    auto& param = item.value();
    if (partitioned && param.numel() == 0 && partitioned->layers()->find(name)) {
      partitioned->set_source(name, it->second, source);
      used.insert(name);
      continue;
    }
    if (it->second.sizes() != param.sizes()) {
      std::ostringstream msg;
      msg << source << ": weight \"" << name << "\" has shape " << it->second.sizes() << ", the config implies "
          << param.sizes();
      throw Error(msg.str());
    }
    param.copy_(it->second);
    release_mapped_pages(it->second);  // a mapped checkpoint's pages go once copied
    used.insert(name);
  }
  for (const auto& [name, tensor] : tensors) {
    if (used.count(name) || is_ignorable_extra(name)) continue;
    if (name == "lm_head.weight" && tied) continue;
    if (name == "v_head.weight" && !model.has_value_head()) continue;  // a reward model loaded as an LM
    throw Error(source + ": unexpected weight \"" + name + "\" (not part of a " + family_name(model.config().family) +
                " model with this config)");
  }
}

}  // namespace

void load_weights(CausalLMImpl& model, const TensorMap& tensors, const std::string& source) {
  load_weights(model, tensors, source, nullptr);
}

CausalLM load_pretrained(const std::filesystem::path& dir, const LoadOptions& options) {
  auto config = load_config(dir);
  auto* partitioned = PartitionedInit::current();
  if (partitioned) partitioned->expect_loaded_values();  // the layers' values come from the file
  auto model = make_causal_lm(config);
  if (options.value_head) model->add_value_head();
  model->to(options.device, options.dtype.value_or(torch::kFloat32));
  // Views of the mapped file, each tensor's pages dropped once copied: loading needs
  // the model's memory, not a second copy of every weight.
  load_weights(*model, map_checkpoint(dir), dir.string(), partitioned);
  model->set_name_or_path(std::filesystem::absolute(dir).lexically_normal().string());
  model->eval();
  return model;
}

namespace {

/// hf_state_dict, except that the weights named in `unmerged` are placeholders of their
/// merged shape and dtype, computed as they are written.
TensorMap hf_state_dict(CausalLMImpl& model, const std::map<std::string, Linear>& unmerged) {
  TensorMap out;
  const bool tied = model.config().tie_word_embeddings;
  std::set<std::string> linear_weights;
  for (auto& [name, linear] : model.linear_layers()) {
    auto key = name + ".weight";
    if (tied && key == "lm_head.weight") continue;
    if (unmerged.count(key)) {
      // Computed as it is written; until then its shape and the merged dtype (a base kept
      // in bf16 merges at the adapter's precision, frozen_weights.hpp), without memory.
      const auto merged = torch::promote_types(linear->weight.scalar_type(), linear->lora_A.scalar_type());
      out[key] = torch::zeros({}, linear->weight.options().dtype(merged)).expand(linear->weight.sizes());
      linear_weights.insert(key);
      continue;
    }
    auto w = linear->effective_weight(/*with_lora=*/true);
    out[key] = linear->options().transposed() ? w.t().contiguous() : w.contiguous();
    linear_weights.insert(key);
  }
  for (auto& item : model.named_parameters()) {
    const auto& name = item.key();
    if (is_lora_parameter(name) || linear_weights.count(name) || (tied && name == "lm_head.weight")) continue;
    out[name] = item.value().detach();
  }
  return out;
}

}  // namespace

TensorMap hf_state_dict(CausalLMImpl& model) { return hf_state_dict(model, {}); }

void save_pretrained(CausalLMImpl& model, const std::filesystem::path& dir, int64_t max_shard_bytes) {
  std::filesystem::create_directories(dir);
  auto config = model.config();
  config.raw["torch_dtype"] = dtype_name(model.input_embedding_weight().scalar_type());
  if (config.raw.contains("architectures") == false) {
    const char* arch[] = {"OPTForCausalLM", "GPT2LMHeadModel", "LlamaForCausalLM"};
    config.raw["architectures"] = {arch[static_cast<int>(config.family)]};
  }
  save_config(config, dir);
  nlohmann::json generation{{"_from_model_config", true}};
  if (config.bos_token_id) generation["bos_token_id"] = *config.bos_token_id;
  if (config.eos_token_id) generation["eos_token_id"] = *config.eos_token_id;
  if (config.pad_token_id) generation["pad_token_id"] = *config.pad_token_id;
  write_file_atomically(dir / "generation_config.json", generation.dump(2) + "\n");
  // A LoRA layer's merged weight is computed as it is written, so a whole merged copy
  // of the model never exists: in its place the map holds the base weight (same shape).
  TensorMap tensors;
  std::map<std::string, Linear> merged_later;
  const bool tied = config.tie_word_embeddings;
  for (auto& [name, linear] : model.linear_layers()) {
    if (!linear->has_lora()) continue;
    auto key = name + ".weight";
    if (tied && key == "lm_head.weight") continue;
    merged_later.emplace(key, linear);
  }
  for (auto& [key, tensor] : hf_state_dict(model, merged_later)) tensors.emplace(key, tensor);
  write_checkpoint(dir, tensors, max_shard_bytes, [&](const std::string& name, const torch::Tensor& stored) {
    auto it = merged_later.find(name);
    if (it == merged_later.end()) return stored;
    torch::NoGradGuard no_grad;
    auto w = it->second->effective_weight(/*with_lora=*/true);
    return it->second->options().transposed() ? w.t().contiguous() : w.contiguous();
  });
}

}  // namespace troupe::models
