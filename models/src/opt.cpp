/// OPT (facebook/opt-*): learned positions offset by 2, pre- or post-LayerNorm, and an
/// embedding width that may differ from the hidden size (OPT-350m).
#include <torch/torch.h>

#include "families.hpp"

namespace troupe::models {
namespace {

/// OPT's learned positions start at index 2 (a fairseq legacy).
constexpr int64_t kOptPositionOffset = 2;

struct OptAttentionImpl : torch::nn::Module {
  OptAttentionImpl(const Config& c) : config(c) {
    auto lin = [&](const char* name) {
      return register_module(name, Linear(LinearOptions(c.hidden_size, c.hidden_size).bias(c.enable_bias)));
    };
    k_proj = lin("k_proj");
    v_proj = lin("v_proj");
    q_proj = lin("q_proj");
    out_proj = lin("out_proj");
  }
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx) {  // x: (B, T, C)
    const auto b = x.size(0), t = x.size(1);
    // Heads counted from the projection: a tensor-parallel rank holds H / W of them.
    auto heads = [&](const torch::Tensor& y) { return y.view({b, t, y.size(-1) / config.head_dim, config.head_dim}).transpose(1, 2); };
    auto q = heads(q_proj->forward(x));  // (B, H, T, D)
    auto k = heads(k_proj->forward(x));
    auto v = heads(v_proj->forward(x));
    if (ctx.cache) std::tie(k, v) = ctx.cache->append(ctx.layer, k, v);
    return out_proj->forward(attend(q, k, v, ctx, config.dropout, is_training()));
  }
  const Config& config;  // the model's: set_dropout reaches every layer
  Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(OptAttention);

struct OptLayerImpl : torch::nn::Module {
  OptLayerImpl(const Config& c) : config(c) {
    self_attn = register_module("self_attn", OptAttention(c));
    self_attn_layer_norm = register_module("self_attn_layer_norm", layer_norm(c.hidden_size, 1e-5));
    fc1 = register_module("fc1", Linear(LinearOptions(c.hidden_size, c.intermediate_size).bias(c.enable_bias)));
    fc2 = register_module("fc2", Linear(LinearOptions(c.intermediate_size, c.hidden_size).bias(c.enable_bias)));
    final_layer_norm = register_module("final_layer_norm", layer_norm(c.hidden_size, 1e-5));
  }
  torch::Tensor forward(torch::Tensor h, const AttentionContext& ctx) {  // (B, T, C)
    const bool pre = config.do_layer_norm_before;
    auto residual = h;
    if (pre) h = self_attn_layer_norm->forward(h);
    h = residual + dropout(self_attn->forward(h, ctx));
    if (!pre) h = self_attn_layer_norm->forward(h);
    residual = h;
    if (pre) h = final_layer_norm->forward(h);
    h = residual + dropout(fc2->forward(fc1->forward_activated(h, kernels::activation_from_name(config.activation))));
    if (!pre) h = final_layer_norm->forward(h);
    return h;
  }
  torch::Tensor dropout(const torch::Tensor& x) { return torch::dropout(x, config.dropout, is_training()); }
  const Config& config;
  OptAttention self_attn{nullptr};
  torch::nn::LayerNorm self_attn_layer_norm{nullptr}, final_layer_norm{nullptr};
  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(OptLayer);

struct OptDecoderImpl : torch::nn::Module {
  OptDecoderImpl(const Config& c) : config(c) {
    const bool projected = c.word_embed_proj_dim != c.hidden_size;
    embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.word_embed_proj_dim));
    embed_positions = register_module(
        "embed_positions", torch::nn::Embedding(c.max_position_embeddings + kOptPositionOffset, c.hidden_size));
    if (projected) {
      project_out = register_module("project_out", Linear(LinearOptions(c.hidden_size, c.word_embed_proj_dim).bias(false)));
      project_in = register_module("project_in", Linear(LinearOptions(c.word_embed_proj_dim, c.hidden_size).bias(false)));
    }
    // OPT-350m (post-LN) has no final LayerNorm.
    const bool remove_final = c.raw.value("_remove_final_layer_norm", false);
    if (c.do_layer_norm_before && !remove_final) {
      final_layer_norm = register_module("final_layer_norm", layer_norm(c.hidden_size, 1e-5));
    }
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_layers; ++i) add_decoder_layer(layers, OptLayer(c));
  }
  const Config& config;
  torch::nn::Embedding embed_tokens{nullptr}, embed_positions{nullptr};
  Linear project_out{nullptr}, project_in{nullptr};
  torch::nn::LayerNorm final_layer_norm{nullptr};
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(OptDecoder);

struct OptModelImpl : torch::nn::Module {
  OptModelImpl(const Config& c) { decoder = register_module("decoder", OptDecoder(c)); }
  OptDecoder decoder{nullptr};
};
TORCH_MODULE(OptModel);

class OptForCausalLM : public CausalLMImpl {
 public:
  explicit OptForCausalLM(Config c) : CausalLMImpl(std::move(c)) {
    model_ = register_module("model", OptModel(config_));
    register_lm_head(model_->decoder->embed_tokens->weight);
  }

  torch::Tensor hidden_states(const DecoderInputs& in) override {
    auto& d = *model_->decoder;
    auto mask = full_attention_mask(in);
    // OPT counts positions from the mask itself (pads at -1, i.e. table row 1).
    auto positions = in.position_ids.defined() ? in.position_ids
                                               : default_position_ids(mask, in.input_ids.size(1), -1);
    auto h = embed_tokens(d.embed_tokens, in);  // (B, T, E)
    if (!d.project_in.is_empty()) h = d.project_in->forward(h);
    h = h + d.embed_positions->forward(positions + kOptPositionOffset);  // (B, T, C)
    auto ctx = make_attention_context(in, mask, h.scalar_type());
    for (size_t i = 0; i < d.layers->size(); ++i) {
      ctx.layer = static_cast<int64_t>(i);
      auto layer = d.layers->ptr<OptLayerImpl>(i);
      h = run_layer(*layer, h, ctx, [layer, ctx](const torch::Tensor& x) { return layer->forward(x, ctx); });
    }
    if (in.cache) in.cache->advance(in.input_ids.size(1));
    if (!d.final_layer_norm.is_empty()) h = d.final_layer_norm->forward(h);
    if (!d.project_out.is_empty()) h = d.project_out->forward(h);
    return h;  // (B, T, E)
  }

  torch::Tensor input_embedding_weight() override { return model_->decoder->embed_tokens->weight; }

 private:
  OptModel model_{nullptr};
};

}  // namespace

CausalLM make_opt(const Config& config) { return CausalLM(std::make_shared<OptForCausalLM>(config)); }

}  // namespace troupe::models
