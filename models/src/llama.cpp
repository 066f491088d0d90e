/// Llama: RMSNorm, rotary positions (RoPE with configurable theta), grouped-query
/// attention and a SiLU-gated MLP.
#include <torch/torch.h>

#include "families.hpp"

namespace troupe::models {
namespace {

struct RmsNormImpl : torch::nn::Module {
  RmsNormImpl(int64_t size, double eps) : eps(eps) { weight = register_parameter("weight", torch::ones({size})); }
  torch::Tensor forward(const torch::Tensor& x) {
    // Normalise in float32 as Hugging Face does, then cast back.
    auto xf = x.to(torch::kFloat32);
    xf = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
    return weight * xf.to(x.scalar_type());
  }
  double eps;
  torch::Tensor weight;
};
TORCH_MODULE(RmsNorm);

/// cos and sin (B, 1, T, D) of the rotary embedding at `positions` (B, T).
std::pair<torch::Tensor, torch::Tensor> rotary(const torch::Tensor& positions, int64_t head_dim, double theta,
                                               torch::ScalarType dtype) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(positions.device());
  auto inv_freq = 1.0 / torch::pow(theta, torch::arange(0, head_dim, 2, opts) / static_cast<double>(head_dim));  // (D/2)
  auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq;  // (B, T, D/2)
  auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);               // (B, 1, T, D)
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

struct LlamaAttentionImpl : torch::nn::Module {
  LlamaAttentionImpl(const Config& c) : config(c) {
    const auto q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
    q_proj = register_module("q_proj", Linear(LinearOptions(c.hidden_size, q_out).bias(c.attention_bias)));
    k_proj = register_module("k_proj", Linear(LinearOptions(c.hidden_size, kv_out).bias(c.attention_bias)));
    v_proj = register_module("v_proj", Linear(LinearOptions(c.hidden_size, kv_out).bias(c.attention_bias)));
    o_proj = register_module("o_proj", Linear(LinearOptions(q_out, c.hidden_size).bias(c.attention_bias)));
  }
  torch::Tensor forward(const torch::Tensor& x, const std::pair<torch::Tensor, torch::Tensor>& rope,
                        const AttentionContext& ctx) {  // x: (B, T, C)
    const auto b = x.size(0), t = x.size(1);
    // Heads counted from the projections: a tensor-parallel rank holds 1/W of them.
    auto heads = [&](const torch::Tensor& y) { return y.view({b, t, y.size(-1) / config.head_dim, config.head_dim}).transpose(1, 2); };
    auto q = heads(q_proj->forward(x));  // (B, H, T, D)
    auto k = heads(k_proj->forward(x));  // (B, Hkv, T, D)
    auto v = heads(v_proj->forward(x));
    const auto& [cos, sin] = rope;
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    if (ctx.cache) std::tie(k, v) = ctx.cache->append(ctx.layer, k, v);
    return o_proj->forward(attend(q, k, v, ctx, config.dropout, is_training()));
  }
  const Config& config;  // the model's: set_dropout reaches every layer
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(LlamaAttention);

struct LlamaMlpImpl : torch::nn::Module {
  LlamaMlpImpl(const Config& c) : config(c) {
    auto opts = [&](int64_t in, int64_t out) { return LinearOptions(in, out).bias(c.mlp_bias); };
    gate_proj = register_module("gate_proj", Linear(opts(c.hidden_size, c.intermediate_size)));
    up_proj = register_module("up_proj", Linear(opts(c.hidden_size, c.intermediate_size)));
    down_proj = register_module("down_proj", Linear(opts(c.intermediate_size, c.hidden_size)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return down_proj->forward(gated_mlp_input(*gate_proj, *up_proj, kernels::activation_from_name(config.activation), x));
  }
  const Config& config;
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMlp);

struct LlamaLayerImpl : torch::nn::Module {
  LlamaLayerImpl(const Config& c) {
    self_attn = register_module("self_attn", LlamaAttention(c));
    mlp = register_module("mlp", LlamaMlp(c));
    input_layernorm = register_module("input_layernorm", RmsNorm(c.hidden_size, c.norm_eps));
    post_attention_layernorm = register_module("post_attention_layernorm", RmsNorm(c.hidden_size, c.norm_eps));
  }
  torch::Tensor forward(torch::Tensor h, const std::pair<torch::Tensor, torch::Tensor>& rope,
                        const AttentionContext& ctx) {  // (B, T, C)
    h = h + self_attn->forward(input_layernorm->forward(h), rope, ctx);
    return h + mlp->forward(post_attention_layernorm->forward(h));
  }
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaLayer);

struct LlamaModelImpl : torch::nn::Module {
  LlamaModelImpl(const Config& c) {
    embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_layers; ++i) add_decoder_layer(layers, LlamaLayer(c));
    norm = register_module("norm", RmsNorm(c.hidden_size, c.norm_eps));
  }
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RmsNorm norm{nullptr};
};
TORCH_MODULE(LlamaModel);

class LlamaForCausalLM : public CausalLMImpl {
 public:
  explicit LlamaForCausalLM(Config c) : CausalLMImpl(std::move(c)) {
    model_ = register_module("model", LlamaModel(config_));
    register_lm_head(model_->embed_tokens->weight);
  }

  torch::Tensor hidden_states(const DecoderInputs& in) override {
    auto& m = *model_;
    auto mask = full_attention_mask(in);
    auto positions = in.position_ids.defined() ? in.position_ids : default_position_ids(mask, in.input_ids.size(1), 1);
    auto h = embed_tokens(m.embed_tokens, in);  // (B, T, C)
    auto rope = rotary(positions, config_.head_dim, config_.rope_theta, h.scalar_type());
    auto ctx = make_attention_context(in, mask, h.scalar_type());
    for (size_t i = 0; i < m.layers->size(); ++i) {
      ctx.layer = static_cast<int64_t>(i);
      auto layer = m.layers->ptr<LlamaLayerImpl>(i);
      h = run_layer(*layer, h, ctx,
                    [layer, rope, ctx](const torch::Tensor& x) { return layer->forward(x, rope, ctx); });
    }
    if (in.cache) in.cache->advance(in.input_ids.size(1));
    return m.norm->forward(h);
  }

  torch::Tensor input_embedding_weight() override { return model_->embed_tokens->weight; }

 private:
  LlamaModel model_{nullptr};
};

}  // namespace

CausalLM make_llama(const Config& config) { return CausalLM(std::make_shared<LlamaForCausalLM>(config)); }

}  // namespace troupe::models
