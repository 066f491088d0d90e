/// GPT-2: fused q/k/v in a Conv1D (weights stored (in, out)), learned positions,
/// pre-LayerNorm, tanh-approximated GELU.
#include <torch/torch.h>

#include "families.hpp"

namespace troupe::models {
namespace {

Linear conv1d(int64_t in, int64_t out) { return Linear(LinearOptions(in, out).transposed(true)); }

struct Gpt2AttentionImpl : torch::nn::Module {
  Gpt2AttentionImpl(const Config& c) : config(c) {
    c_attn = register_module("c_attn", conv1d(c.hidden_size, 3 * c.hidden_size));
    c_proj = register_module("c_proj", conv1d(c.hidden_size, c.hidden_size));
  }
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx) {  // x: (B, T, C)
    const auto b = x.size(0), t = x.size(1);
    auto qkv = c_attn->forward(x);  // a tensor-parallel rank holds H / W of the heads
    qkv = qkv.view({b, t, 3, qkv.size(-1) / (3 * config.head_dim), config.head_dim});
    auto q = qkv.select(2, 0).transpose(1, 2);  // (B, H, T, D)
    auto k = qkv.select(2, 1).transpose(1, 2);
    auto v = qkv.select(2, 2).transpose(1, 2);
    if (ctx.cache) std::tie(k, v) = ctx.cache->append(ctx.layer, k, v);
    return c_proj->forward(attend(q, k, v, ctx, config.dropout, is_training()));
  }
  const Config& config;  // the model's: set_dropout reaches every layer
  Linear c_attn{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2Attention);

struct Gpt2MlpImpl : torch::nn::Module {
  Gpt2MlpImpl(const Config& c) : config(c) {
    c_fc = register_module("c_fc", conv1d(c.hidden_size, c.intermediate_size));
    c_proj = register_module("c_proj", conv1d(c.intermediate_size, c.hidden_size));
  }
  torch::Tensor forward(const torch::Tensor& x) { return c_proj->forward(c_fc->forward_activated(x, kernels::activation_from_name(config.activation))); }
  const Config& config;
  Linear c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2Mlp);

struct Gpt2BlockImpl : torch::nn::Module {
  Gpt2BlockImpl(const Config& c) : config(c) {
    ln_1 = register_module("ln_1", layer_norm(c.hidden_size, c.norm_eps));
    attn = register_module("attn", Gpt2Attention(c));
    ln_2 = register_module("ln_2", layer_norm(c.hidden_size, c.norm_eps));
    mlp = register_module("mlp", Gpt2Mlp(c));
  }
  torch::Tensor forward(torch::Tensor h, const AttentionContext& ctx) {  // (B, T, C)
    h = h + torch::dropout(attn->forward(ln_1->forward(h), ctx), config.dropout, is_training());
    return h + torch::dropout(mlp->forward(ln_2->forward(h)), config.dropout, is_training());
  }
  const Config& config;
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Gpt2Attention attn{nullptr};
  Gpt2Mlp mlp{nullptr};
};
TORCH_MODULE(Gpt2Block);

struct Gpt2ModelImpl : torch::nn::Module {
  Gpt2ModelImpl(const Config& c) {
    wte = register_module("wte", torch::nn::Embedding(c.vocab_size, c.hidden_size));
    wpe = register_module("wpe", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_layers; ++i) add_decoder_layer(h, Gpt2Block(c));
    ln_f = register_module("ln_f", layer_norm(c.hidden_size, c.norm_eps));
  }
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
};
TORCH_MODULE(Gpt2Model);

class Gpt2LMHeadModel : public CausalLMImpl {
 public:
  explicit Gpt2LMHeadModel(Config c) : CausalLMImpl(std::move(c)) {
    transformer_ = register_module("transformer", Gpt2Model(config_));
    register_lm_head(transformer_->wte->weight);
  }

  torch::Tensor hidden_states(const DecoderInputs& in) override {
    auto& m = *transformer_;
    auto mask = full_attention_mask(in);
    auto positions = in.position_ids.defined() ? in.position_ids : default_position_ids(mask, in.input_ids.size(1), 1);
    auto h = embed_tokens(m.wte, in) + m.wpe->forward(positions);  // (B, T, C)
    h = torch::dropout(h, config_.dropout, is_training());
    auto ctx = make_attention_context(in, mask, h.scalar_type());
    for (size_t i = 0; i < m.h->size(); ++i) {
      ctx.layer = static_cast<int64_t>(i);
      auto block = m.h->ptr<Gpt2BlockImpl>(i);
      h = run_layer(*block, h, ctx, [block, ctx](const torch::Tensor& x) { return block->forward(x, ctx); });
    }
    if (in.cache) in.cache->advance(in.input_ids.size(1));
    return m.ln_f->forward(h);
  }

  torch::Tensor input_embedding_weight() override { return transformer_->wte->weight; }

 private:
  Gpt2Model transformer_{nullptr};
};

}  // namespace

CausalLM make_gpt2(const Config& config) { return CausalLM(std::make_shared<Gpt2LMHeadModel>(config)); }

}  // namespace troupe::models
