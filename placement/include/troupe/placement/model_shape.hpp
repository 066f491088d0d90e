#pragma once
/// The sizes of a decoder that memory planning needs, from a Hugging Face config.json
/// or a named preset, and the parameter counts that follow from them.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace troupe::placement {

/// The families troupe implements; they differ in biases, norms and the MLP.
enum class Architecture { Opt, Gpt2, Llama };

struct ModelShape {
  std::string name;
  Architecture architecture = Architecture::Opt;
  int64_t layers = 0;
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;  ///< < heads for grouped-query attention
  int64_t head_dim = 0;
  int64_t intermediate = 0;
  int64_t vocab = 0;
  int64_t max_positions = 0;
  int64_t embed_dim = 0;        ///< OPT word_embed_proj_dim (512 in OPT-350m); = hidden otherwise
  bool tied_embeddings = true;  ///< LM head shares the token embedding
  bool final_norm = true;       ///< OPT-350m (post-LN) has no final layer norm
};

/// Which output a role's model has: actor/reference predict tokens, critic/reward a
/// value per token (`v_head`; troupe's model keeps its LM head, which a value model
/// does not use).
enum class Head { LanguageModel, Value };

/// Exact parameter count, e.g. 1,315,758,080 for OPT-1.3B with its LM head.
int64_t parameter_count(const ModelShape& shape, Head head);
/// Parameters of one decoder layer (the unit ZeRO-3 gathers at a time).
int64_t layer_parameter_count(const ModelShape& shape);
/// LoRA adapter parameters (A: r x in, B: out x r) on every linear layer of every
/// decoder layer, as DeepSpeed-Chat's `lora_module_name` "decoder.layers." selects.
int64_t lora_parameter_count(const ModelShape& shape, int64_t lora_dim);

/// A preset by name ("opt-1.3b", "llama-7b", ...), or nullopt.
std::optional<ModelShape> find_preset(const std::string& name);
std::vector<std::string> preset_names();

/// The shape of a config.json object (read through troupe::models::Config).
ModelShape model_shape_from_config(const nlohmann::json& config, const std::string& source);
/// A preset name, or a Hugging Face model directory (or its config.json). Throws
/// troupe::Error naming the presets when `name` is neither.
ModelShape resolve_model_shape(const std::string& name);

}  // namespace troupe::placement
