#pragma once
/// Helpers shared by the model tests: fixture paths and tiny random configs.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include <troupe/models/config.hpp>

namespace troupe::test {

inline std::filesystem::path fixture_dir(const std::string& name) {
  return std::filesystem::path(TROUPE_FIXTURES_DIR) / "models" / name;
}

inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::path(TROUPE_TEST_TMP_DIR) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

/// A tiny config of each family (random weights; for self-consistency tests).
inline models::Config tiny_config(const std::string& family) {
  nlohmann::json j;
  if (family == "opt") {
    j = {{"model_type", "opt"}, {"vocab_size", 50}, {"hidden_size", 16}, {"num_hidden_layers", 2},
         {"num_attention_heads", 4}, {"ffn_dim", 32}, {"max_position_embeddings", 64},
         {"word_embed_proj_dim", 8}, {"do_layer_norm_before", false}, {"pad_token_id", 1}, {"eos_token_id", 2}};
  } else if (family == "gpt2") {
    j = {{"model_type", "gpt2"}, {"vocab_size", 50}, {"n_embd", 16}, {"n_layer", 2}, {"n_head", 4},
         {"n_positions", 64}, {"eos_token_id", 2}};
  } else {
    j = {{"model_type", "llama"}, {"vocab_size", 50}, {"hidden_size", 16}, {"num_hidden_layers", 2},
         {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 32},
         {"max_position_embeddings", 64}, {"eos_token_id", 2}, {"pad_token_id", 0}};
  }
  return models::parse_config(j, family + " test config");
}

}  // namespace troupe::test
