#include <troupe/engine/model_presets.hpp>

#include <map>

#include <nlohmann/json.hpp>
#include <torch/nn/modules/embedding.h>

#include <troupe/common/error.hpp>
#include <troupe/models/config.hpp>
#include <troupe/models/tokenizer.hpp>

namespace troupe::engine {
namespace {

struct Shape {
  const char* family;
  int64_t hidden, layers, heads, ffn, positions;
};

const std::map<std::string, Shape>& presets() {
  static const std::map<std::string, Shape> table{
      {"opt-tiny", {"opt", 128, 2, 4, 512, 256}},      {"gpt2-tiny", {"gpt2", 128, 2, 4, 512, 256}},
      {"llama-tiny", {"llama", 128, 2, 4, 352, 256}},  {"opt-small", {"opt", 256, 4, 8, 1024, 512}},
      {"gpt2-small", {"gpt2", 256, 4, 8, 1024, 512}},  {"llama-small", {"llama", 256, 4, 8, 704, 512}},
      {"opt-125m", {"opt", 768, 12, 12, 3072, 2048}},  {"opt-350m", {"opt", 1024, 24, 16, 4096, 2048}},
      {"opt-1.3b", {"opt", 2048, 24, 32, 8192, 2048}},
  };
  return table;
}

}  // namespace

std::optional<std::string> preset_name(const std::string& model_name_or_path) {
  const std::string prefix = "preset:";
  if (model_name_or_path.rfind(prefix, 0) != 0) return std::nullopt;
  return model_name_or_path.substr(prefix.size());
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, shape] : presets()) names.push_back(name);
  return names;
}

nlohmann::json preset_config_json(const std::string& name, const models::Tokenizer& tokenizer) {
  auto found = presets().find(name);
  if (found == presets().end()) {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("--model_name_or_path preset:" + name + ": unknown preset (known: " + known + ")");
  }
  const Shape& s = found->second;
  const std::string family = s.family;
  nlohmann::json c{{"model_type", family}, {"vocab_size", tokenizer.vocab_size()}};
  auto special = [&](const char* key, std::optional<int64_t> id) {
    if (id) c[key] = *id;
  };
  special("bos_token_id", tokenizer.bos_token_id());
  special("eos_token_id", tokenizer.eos_token_id());
  special("pad_token_id", tokenizer.pad_token_id());
  if (family == "opt") {
    c.update({{"architectures", {"OPTForCausalLM"}}, {"hidden_size", s.hidden}, {"num_hidden_layers", s.layers},
              {"num_attention_heads", s.heads}, {"ffn_dim", s.ffn}, {"max_position_embeddings", s.positions},
              {"word_embed_proj_dim", s.hidden}, {"do_layer_norm_before", true}, {"activation_function", "relu"},
              {"enable_bias", true}, {"dropout", 0.1}, {"attention_dropout", 0.0}, {"init_std", 0.02},
              {"layer_norm_elementwise_affine", true}, {"tie_word_embeddings", true}});
  } else if (family == "gpt2") {
    c.update({{"architectures", {"GPT2LMHeadModel"}}, {"n_embd", s.hidden}, {"n_layer", s.layers}, {"n_head", s.heads},
              {"n_inner", s.ffn}, {"n_positions", s.positions}, {"activation_function", "gelu_new"},
              {"resid_pdrop", 0.1}, {"embd_pdrop", 0.1}, {"attn_pdrop", 0.1}, {"layer_norm_epsilon", 1e-5},
              {"initializer_range", 0.02}, {"tie_word_embeddings", true}});
  } else {
    c.update({{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", s.hidden}, {"num_hidden_layers", s.layers},
              {"num_attention_heads", s.heads}, {"num_key_value_heads", s.heads}, {"intermediate_size", s.ffn},
              {"max_position_embeddings", s.positions}, {"hidden_act", "silu"}, {"rms_norm_eps", 1e-6},
              {"rope_theta", 10000.0}, {"attention_bias", false}, {"mlp_bias", false}, {"initializer_range", 0.02},
              {"tie_word_embeddings", true}});
  }
  return c;
}

models::CausalLM make_preset_model(const std::string& name, const models::Tokenizer& tokenizer) {
  auto model = models::make_causal_lm(models::parse_config(preset_config_json(name, tokenizer), "preset:" + name));
  // LibTorch's Embedding starts at N(0, 1); transformers starts every embedding at
  // N(0, initializer_range = 0.02). With a tied LM head, N(0, 1) gives logits of size
  // ~sqrt(hidden) and a first loss far above ln(vocab).
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_modules())
    if (auto* embedding = item.value()->as<torch::nn::Embedding>()) embedding->weight.normal_(0.0, 0.02);
  return model;
}

}  // namespace troupe::engine
