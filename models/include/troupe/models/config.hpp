#pragma once
/// Model configuration read from a Hugging Face `config.json`.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace troupe::models {

/// The decoder families troupe implements.
enum class Family { Opt, Gpt2, Llama };

struct Config {
  Family family = Family::Llama;
  std::string model_type;  ///< as in config.json: "opt", "gpt2", "llama", ...
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  ///< < num_heads for grouped-query attention
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;
  std::string activation;  ///< "relu", "gelu_new", "silu", ...
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;  ///< Llama only
  bool tie_word_embeddings = true;
  bool attention_bias = false;  ///< Llama: bias on q/k/v/o projections
  bool mlp_bias = false;        ///< Llama: bias on the MLP projections
  int64_t word_embed_proj_dim = 0;    ///< OPT: embedding width (!= hidden_size in OPT-350m)
  bool do_layer_norm_before = true;   ///< OPT: pre-LN (true) or post-LN (OPT-350m)
  bool enable_bias = true;            ///< OPT
  std::optional<int64_t> pad_token_id, bos_token_id, eos_token_id;
  float dropout = 0.0f;  ///< residual/attention dropout used in training mode
  /// The file as read, so a save writes back every field troupe does not model.
  nlohmann::json raw;
};

/// Parses a config.json object; `source` names it in errors. Throws troupe::Error for
/// an unknown `model_type` (naming the supported ones) or a missing or wrongly typed
/// field (naming it).
Config parse_config(const nlohmann::json& json, const std::string& source);

/// Reads `dir/config.json` (or the file itself when `path` is a file).
Config load_config(const std::filesystem::path& path);

/// The config as Hugging Face writes it (raw fields kept, troupe's values applied).
nlohmann::json to_json(const Config& config);

/// Writes `dir/config.json` through a temporary name renamed into place.
void save_config(const Config& config, const std::filesystem::path& dir);

/// A short name for messages: "opt", "gpt2", "llama".
const char* family_name(Family family);

}  // namespace troupe::models
