#include <troupe/placement/model_shape.hpp>

namespace troupe::placement {
namespace {

ModelShape make(std::string name, Architecture arch, int64_t layers, int64_t hidden, int64_t heads, int64_t kv_heads,
                int64_t intermediate, int64_t vocab, int64_t max_positions, bool tied) {
  ModelShape s;
  s.name = std::move(name);
  s.architecture = arch;
  s.layers = layers;
  s.hidden = hidden;
  s.heads = heads;
  s.kv_heads = kv_heads;
  s.head_dim = hidden / heads;
  s.intermediate = intermediate;
  s.vocab = vocab;
  s.max_positions = max_positions;
  s.embed_dim = hidden;
  s.tied_embeddings = tied;
  return s;
}

/// Sizes from each model's published config.json.
std::vector<ModelShape> presets() {
  using A = Architecture;
  std::vector<ModelShape> out = {
      make("opt-125m", A::Opt, 12, 768, 12, 12, 3072, 50272, 2048, true),
      make("opt-350m", A::Opt, 24, 1024, 16, 16, 4096, 50272, 2048, true),
      make("opt-1.3b", A::Opt, 24, 2048, 32, 32, 8192, 50272, 2048, true),
      make("opt-2.7b", A::Opt, 32, 2560, 32, 32, 10240, 50272, 2048, true),
      make("opt-6.7b", A::Opt, 32, 4096, 32, 32, 16384, 50272, 2048, true),
      make("opt-13b", A::Opt, 40, 5120, 40, 40, 20480, 50272, 2048, true),
      make("opt-30b", A::Opt, 48, 7168, 56, 56, 28672, 50272, 2048, true),
      make("opt-66b", A::Opt, 64, 9216, 72, 72, 36864, 50272, 2048, true),
      make("gpt2", A::Gpt2, 12, 768, 12, 12, 3072, 50257, 1024, true),
      make("gpt2-medium", A::Gpt2, 24, 1024, 16, 16, 4096, 50257, 1024, true),
      make("gpt2-large", A::Gpt2, 36, 1280, 20, 20, 5120, 50257, 1024, true),
      make("gpt2-xl", A::Gpt2, 48, 1600, 25, 25, 6400, 50257, 1024, true),
      make("llama-7b", A::Llama, 32, 4096, 32, 32, 11008, 32000, 2048, false),
      make("llama-13b", A::Llama, 40, 5120, 40, 40, 13824, 32000, 2048, false),
      make("llama-2-7b", A::Llama, 32, 4096, 32, 32, 11008, 32000, 4096, false),
      make("llama-2-13b", A::Llama, 40, 5120, 40, 40, 13824, 32000, 4096, false),
      make("llama-2-70b", A::Llama, 80, 8192, 64, 8, 28672, 32000, 4096, false),
      make("llama-3-8b", A::Llama, 32, 4096, 32, 8, 14336, 128256, 8192, false),
  };
  // OPT-350m projects 512-wide embeddings to 1024 and is post-LN (no final norm).
  out[1].embed_dim = 512;
  out[1].final_norm = false;
  return out;
}

}  // namespace

int64_t layer_parameter_count(const ModelShape& s) {
  const int64_t h = s.hidden, i = s.intermediate, q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  switch (s.architecture) {
    case Architecture::Opt:  // q, k, v, out with biases; fc1, fc2 with biases; two LayerNorms
      return 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h;
    case Architecture::Gpt2:  // c_attn (h -> 3h), c_proj, c_fc, mlp c_proj, all with biases; two LayerNorms
      return (h * 3 * h + 3 * h) + (h * h + h) + (h * i + i) + (i * h + h) + 4 * h;
    case Architecture::Llama:  // q, k, v, o and gate, up, down without biases; two RMSNorm weights
      return h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h;
  }
  return 0;
}

int64_t parameter_count(const ModelShape& s, Head head) {
  const int64_t h = s.hidden, e = s.embed_dim ? s.embed_dim : s.hidden;
  int64_t total = s.layers * layer_parameter_count(s);
  int64_t out_width = h;
  switch (s.architecture) {
    case Architecture::Opt:
      total += s.vocab * e + (s.max_positions + 2) * h;  // OPT's learned positions start at offset 2
      if (e != h) total += 2 * e * h;                    // project_in, project_out (no bias)
      if (s.final_norm) total += 2 * h;
      out_width = e;
      break;
    case Architecture::Gpt2:
      total += s.vocab * h + s.max_positions * h + 2 * h;
      break;
    case Architecture::Llama:
      total += s.vocab * h + h;
      break;
  }
  // troupe's models keep their LM head with a value head (unused there).
  if (!s.tied_embeddings) total += s.vocab * out_width;
  if (head == Head::Value) total += out_width;  // v_head: Linear(out_width, 1, bias=False)
  return total;
}

int64_t lora_parameter_count(const ModelShape& s, int64_t r) {
  if (r <= 0) return 0;
  const int64_t h = s.hidden, i = s.intermediate, q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  int64_t per_layer = 0;  // sum over linear layers of r * (in + out)
  switch (s.architecture) {
    case Architecture::Opt: per_layer = 4 * (h + h) + (h + i) + (i + h); break;
    case Architecture::Gpt2: per_layer = (h + 3 * h) + (h + h) + (h + i) + (i + h); break;
    case Architecture::Llama: per_layer = (h + q) + 2 * (h + kv) + (q + h) + 3 * (h + i); break;
  }
  return s.layers * r * per_layer;
}

std::optional<ModelShape> find_preset(const std::string& name) {
  for (auto& shape : presets())
    if (shape.name == name) return shape;
  return std::nullopt;
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& shape : presets()) names.push_back(shape.name);
  return names;
}

}  // namespace troupe::placement
