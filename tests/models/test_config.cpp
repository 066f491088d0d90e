#include <catch2/catch.hpp>

#include <troupe/common/error.hpp>
#include <troupe/models/config.hpp>

using troupe::models::Family;
using troupe::models::parse_config;

TEST_CASE("OPT-350m's config: projection width differs and LayerNorm comes after", "[config]") {
  auto c = parse_config(nlohmann::json::parse(R"({
    "model_type": "opt", "vocab_size": 50272, "hidden_size": 1024, "num_hidden_layers": 24,
    "num_attention_heads": 16, "ffn_dim": 4096, "max_position_embeddings": 2048,
    "word_embed_proj_dim": 512, "do_layer_norm_before": false, "pad_token_id": 1,
    "bos_token_id": 2, "eos_token_id": 2, "activation_function": "relu"})"), "opt-350m");
  CHECK(c.family == Family::Opt);
  CHECK(c.word_embed_proj_dim == 512);
  CHECK_FALSE(c.do_layer_norm_before);
  CHECK(c.head_dim == 64);
  CHECK(*c.pad_token_id == 1);
  CHECK(c.tie_word_embeddings);
}

TEST_CASE("Llama config with grouped-query attention and RoPE theta", "[config]") {
  auto c = parse_config(nlohmann::json::parse(R"({
    "model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
    "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "eos_token_id": [128001, 128009]})"), "llama3");
  CHECK(c.family == Family::Llama);
  CHECK(c.num_kv_heads == 8);
  CHECK(c.rope_theta == 500000.0);
  CHECK(*c.eos_token_id == 128001);
  CHECK_FALSE(c.tie_word_embeddings);
}

TEST_CASE("config errors name the file, the field and what was expected", "[config]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(parse_config(nlohmann::json::parse(R"({"model_type": "bloom"})"), "cfg.json"),
                    Contains("cfg.json") && Contains("bloom") && Contains("opt, gpt2, llama"));
  CHECK_THROWS_WITH(parse_config(nlohmann::json::parse(R"({"model_type": "gpt2", "n_embd": "wide"})"), "cfg.json"),
                    Contains("n_embd") && Contains("expected an integer"));
  CHECK_THROWS_WITH(parse_config(nlohmann::json::parse(R"({"model_type": "llama", "vocab_size": 10,
      "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8,
      "num_key_value_heads": 3})"), "cfg.json"), Contains("num_key_value_heads"));
}
