/// The one file that reads a model's config.json (through troupe::models::Config).
#include <troupe/placement/model_shape.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/models/config.hpp>

namespace troupe::placement {

ModelShape model_shape_from_config(const nlohmann::json& json, const std::string& source) {
  const auto config = models::parse_config(json, source);
  ModelShape s;
  s.name = json.value("_name_or_path", config.model_type);
  switch (config.family) {
    case models::Family::Opt: s.architecture = Architecture::Opt; break;
    case models::Family::Gpt2: s.architecture = Architecture::Gpt2; break;
    case models::Family::Llama: s.architecture = Architecture::Llama; break;
  }
  s.layers = config.num_layers;
  s.hidden = config.hidden_size;
  s.heads = config.num_heads;
  s.kv_heads = config.num_kv_heads ? config.num_kv_heads : config.num_heads;
  s.head_dim = config.head_dim ? config.head_dim : config.hidden_size / config.num_heads;
  s.intermediate = config.intermediate_size;
  s.vocab = config.vocab_size;
  s.max_positions = config.max_position_embeddings;
  s.embed_dim = config.word_embed_proj_dim ? config.word_embed_proj_dim : config.hidden_size;
  s.tied_embeddings = config.tie_word_embeddings;
  // OPT drops the final LayerNorm when post-LN (OPT-350m) or when told to.
  s.final_norm = config.family != models::Family::Opt ||
                 (config.do_layer_norm_before && !json.value("_remove_final_layer_norm", false));
  if (s.layers <= 0 || s.hidden <= 0 || s.heads <= 0 || s.vocab <= 0 || s.intermediate <= 0)
    throw Error(source + ": incomplete model sizes (layers, hidden, heads, vocab, intermediate must be positive)");
  return s;
}

ModelShape resolve_model_shape(const std::string& name) {
  if (auto preset = find_preset(name)) return *preset;
  std::filesystem::path path(name);
  if (std::filesystem::is_directory(path)) path /= "config.json";
  if (!std::filesystem::is_regular_file(path)) {
    std::string known;
    for (const auto& p : preset_names()) known += (known.empty() ? "" : ", ") + p;
    throw Error("model \"" + name + "\": neither a preset (" + known + ") nor a directory with config.json");
  }
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + ": not valid JSON: " + e.what());
  }
  auto shape = model_shape_from_config(json, path.string());
  shape.name = name;
  return shape;
}

}  // namespace troupe::placement
