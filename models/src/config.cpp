#include <troupe/models/config.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

namespace troupe::models {
namespace {

/// Reads fields of one config.json, naming the file and field in every error.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& json, const std::string& source) : json_(json), source_(source) {}

  int64_t integer(const char* name) const {
    const auto& v = require(name);
    if (!v.is_number_integer()) fail(name, "an integer", v);
    return v.get<int64_t>();
  }
  int64_t integer(const char* name, int64_t fallback) const {
    return present(name) ? integer(name) : fallback;
  }
  double number(const char* name, double fallback) const {
    if (!present(name)) return fallback;
    const auto& v = json_.at(name);
    if (!v.is_number()) fail(name, "a number", v);
    return v.get<double>();
  }
  bool boolean(const char* name, bool fallback) const {
    if (!present(name)) return fallback;
    const auto& v = json_.at(name);
    if (!v.is_boolean()) fail(name, "true or false", v);
    return v.get<bool>();
  }
  std::string string(const char* name, const std::string& fallback) const {
    if (!present(name)) return fallback;
    const auto& v = json_.at(name);
    if (!v.is_string()) fail(name, "a string", v);
    return v.get<std::string>();
  }
  /// Token ids may be null, an integer, or (eos in newer Llama configs) a list whose
  /// first entry is taken.
  std::optional<int64_t> token_id(const char* name) const {
    if (!present(name)) return std::nullopt;
    const auto& v = json_.at(name);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_array() && !v.empty() && v.front().is_number_integer()) return v.front().get<int64_t>();
    fail(name, "an integer token id", v);
  }
  bool present(const char* name) const { return json_.contains(name) && !json_.at(name).is_null(); }
  [[noreturn]] void fail(const char* name, const std::string& expected, const nlohmann::json& got) const {
    throw Error(source_ + ": field \"" + name + "\": expected " + expected + ", got " + got.dump());
  }
  void check(bool ok, const char* name, const std::string& expected) const {
    if (!ok) fail(name, expected, json_.contains(name) ? json_.at(name) : nlohmann::json());
  }

 private:
  const nlohmann::json& require(const char* name) const {
    if (!json_.contains(name)) throw Error(source_ + ": missing field \"" + name + "\"");
    return json_.at(name);
  }
  const nlohmann::json& json_;
  const std::string& source_;
};

void read_opt(const FieldReader& f, Config& c) {
  c.family = Family::Opt;
  c.hidden_size = f.integer("hidden_size");
  c.num_layers = f.integer("num_hidden_layers");
  c.num_heads = f.integer("num_attention_heads");
  c.num_kv_heads = c.num_heads;
  c.intermediate_size = f.integer("ffn_dim");
  c.max_position_embeddings = f.integer("max_position_embeddings");
  c.activation = f.string("activation_function", "relu");
  c.word_embed_proj_dim = f.integer("word_embed_proj_dim", c.hidden_size);
  c.do_layer_norm_before = f.boolean("do_layer_norm_before", true);
  c.enable_bias = f.boolean("enable_bias", true);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", true);
  c.dropout = static_cast<float>(f.number("dropout", 0.1));
  c.norm_eps = 1e-5;
  f.check(f.boolean("layer_norm_elementwise_affine", true), "layer_norm_elementwise_affine", "true");
}

void read_gpt2(const FieldReader& f, Config& c) {
  c.family = Family::Gpt2;
  c.hidden_size = f.integer("n_embd");
  c.num_layers = f.integer("n_layer");
  c.num_heads = f.integer("n_head");
  c.num_kv_heads = c.num_heads;
  c.intermediate_size = f.integer("n_inner", 4 * c.hidden_size);
  c.max_position_embeddings = f.integer("n_positions");
  c.activation = f.string("activation_function", "gelu_new");
  c.norm_eps = f.number("layer_norm_epsilon", 1e-5);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", true);
  c.dropout = static_cast<float>(f.number("resid_pdrop", 0.1));
  f.check(f.boolean("scale_attn_weights", true), "scale_attn_weights", "true");
  f.check(!f.boolean("scale_attn_by_inverse_layer_idx", false), "scale_attn_by_inverse_layer_idx", "false");
}

void read_llama(const FieldReader& f, Config& c) {
  c.family = Family::Llama;
  c.hidden_size = f.integer("hidden_size");
  c.num_layers = f.integer("num_hidden_layers");
  c.num_heads = f.integer("num_attention_heads");
  c.num_kv_heads = f.integer("num_key_value_heads", c.num_heads);
  c.intermediate_size = f.integer("intermediate_size");
  c.max_position_embeddings = f.integer("max_position_embeddings", 2048);
  c.activation = f.string("hidden_act", "silu");
  c.norm_eps = f.number("rms_norm_eps", 1e-6);
  c.rope_theta = f.number("rope_theta", 10000.0);
  c.attention_bias = f.boolean("attention_bias", false);
  c.mlp_bias = f.boolean("mlp_bias", false);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.dropout = static_cast<float>(f.number("attention_dropout", 0.0));
  if (f.present("head_dim")) c.head_dim = f.integer("head_dim");
  f.check(!f.present("rope_scaling"), "rope_scaling", "null (RoPE scaling is not supported yet)");
}

}  // namespace

const char* family_name(Family family) {
  switch (family) {
    case Family::Opt: return "opt";
    case Family::Gpt2: return "gpt2";
    case Family::Llama: return "llama";
  }
  return "?";
}

Config parse_config(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) throw Error(source + ": expected a JSON object");
  FieldReader f(json, source);
  Config c;
  c.raw = json;
  c.model_type = f.string("model_type", "");
  if (c.model_type == "opt") {
    read_opt(f, c);
  } else if (c.model_type == "gpt2") {
    read_gpt2(f, c);
  } else if (c.model_type == "llama") {
    read_llama(f, c);
  } else {
    throw Error(source + ": field \"model_type\": unsupported model type \"" + c.model_type +
                "\"; supported: opt, gpt2, llama");
  }
  c.vocab_size = f.integer("vocab_size");
  if (c.head_dim == 0) {
    f.check(c.num_heads > 0 && c.hidden_size % c.num_heads == 0, "num_attention_heads",
            "a positive divisor of the hidden size");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  f.check(c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads == 0, "num_key_value_heads",
          "a positive divisor of the number of attention heads");
  f.check(c.vocab_size > 0, "vocab_size", "a positive integer");
  f.check(c.num_layers > 0, "num_hidden_layers", "a positive integer");
  c.pad_token_id = f.token_id("pad_token_id");
  c.bos_token_id = f.token_id("bos_token_id");
  c.eos_token_id = f.token_id("eos_token_id");
  return c;
}

Config load_config(const std::filesystem::path& path) {
  auto file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  if (!std::filesystem::exists(file)) throw Error(file.string() + ": no such file (expected a Hugging Face config.json)");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(file.string() + ": invalid JSON: " + e.what());
  }
  return parse_config(json, file.string());
}

nlohmann::json to_json(const Config& c) {
  nlohmann::json j = c.raw.is_object() ? c.raw : nlohmann::json::object();
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  auto id = [&](const char* name, const std::optional<int64_t>& v) {
    if (v) j[name] = *v;
  };
  id("pad_token_id", c.pad_token_id);
  id("bos_token_id", c.bos_token_id);
  id("eos_token_id", c.eos_token_id);
  switch (c.family) {
    case Family::Opt:
      j["hidden_size"] = c.hidden_size;
      j["num_hidden_layers"] = c.num_layers;
      j["num_attention_heads"] = c.num_heads;
      j["ffn_dim"] = c.intermediate_size;
      j["max_position_embeddings"] = c.max_position_embeddings;
      j["activation_function"] = c.activation;
      j["word_embed_proj_dim"] = c.word_embed_proj_dim;
      j["do_layer_norm_before"] = c.do_layer_norm_before;
      j["enable_bias"] = c.enable_bias;
      break;
    case Family::Gpt2:
      j["n_embd"] = c.hidden_size;
      j["n_layer"] = c.num_layers;
      j["n_head"] = c.num_heads;
      j["n_inner"] = c.intermediate_size;
      j["n_positions"] = c.max_position_embeddings;
      j["activation_function"] = c.activation;
      j["layer_norm_epsilon"] = c.norm_eps;
      break;
    case Family::Llama:
      j["hidden_size"] = c.hidden_size;
      j["num_hidden_layers"] = c.num_layers;
      j["num_attention_heads"] = c.num_heads;
      j["num_key_value_heads"] = c.num_kv_heads;
      j["head_dim"] = c.head_dim;
      j["intermediate_size"] = c.intermediate_size;
      j["max_position_embeddings"] = c.max_position_embeddings;
      j["hidden_act"] = c.activation;
      j["rms_norm_eps"] = c.norm_eps;
      j["rope_theta"] = c.rope_theta;
      j["attention_bias"] = c.attention_bias;
      j["mlp_bias"] = c.mlp_bias;
      break;
  }
  return j;
}

void save_config(const Config& config, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  write_file_atomically(dir / "config.json", to_json(config).dump(2) + "\n");
}

}  // namespace troupe::models
