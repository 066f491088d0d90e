#pragma once
/// The decoder-only language model every family implements, with Hugging Face
/// parameter names, an LM head and an optional value head (critic / reward model).
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include <troupe/models/checkpointing.hpp>
#include <troupe/models/config.hpp>
#include <troupe/models/kv_cache.hpp>
#include <troupe/models/linear.hpp>

namespace troupe::models {

struct TensorParallelRank;  // tensor_parallel.hpp

/// Inputs of one decoder pass. With a cache, `input_ids` holds only the new tokens
/// and `attention_mask` covers cached and new positions.
struct DecoderInputs {
  torch::Tensor input_ids;       // (B, T) int64
  torch::Tensor attention_mask;  // (B, P + T), 1 = real token; undefined = all real; packed: k / -k (packed_batch.hpp)
  torch::Tensor position_ids;    // (B, T); undefined = counted from the mask
  KVCache* cache = nullptr;      // P = cache->length() cached positions, or none
  // Set by forward() when the pass trains an LM head tied to the input embedding: the
  // family's embed_tokens() puts there the weight the head must read (tied_embedding.hpp).
  torch::Tensor* tied_head_weight = nullptr;
};

/// What a layer needs to attend: the pass's attention mask, the cache, and (built once
/// per pass, when some layer needs it) the additive mask that combines causality and
/// padding. Decode steps read the padding from `key_mask` in the decode kernel, so
/// theirs is never built unless a layer falls back to SDPA.
struct AttentionContext {
  KVCache* cache = nullptr;
  int64_t layer = 0;
  torch::Tensor key_mask;  // (B, P + T) integer or bool, 1 = real token
  /// T == 1 over a cache without autograd: attend() may run kernels::decode_attention.
  bool decode = false;

  /// (B, 1, T, P + T) in the model's dtype, 0 = may attend, -inf = may not.
  const torch::Tensor& additive_mask() const;

  // What additive_mask() builds from; the copies of the context each layer captures
  // share the one mask.
  int64_t new_tokens = 0;  // T
  torch::ScalarType dtype = torch::kFloat32;
  std::shared_ptr<torch::Tensor> additive = std::make_shared<torch::Tensor>();
};

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(Config config) : config_(std::move(config)) {}

  const Config& config() const { return config_; }

  /// The Hugging Face directory the weights came from (load_pretrained sets it, as
  /// transformers' `name_or_path`); empty for a model built in code. A LoRA checkpoint
  /// and a PEFT adapter name it as their base.
  const std::string& name_or_path() const { return name_or_path_; }
  void set_name_or_path(std::string dir) { name_or_path_ = std::move(dir); }

  /// Recompute each decoder layer's activations in the backward instead of keeping them
  /// (training passes only: grad mode on, training mode, no KV cache). Off by default.
  void set_gradient_checkpointing(bool on) { gradient_checkpointing_ = on; }
  bool gradient_checkpointing() const { return gradient_checkpointing_; }

  /// Ranks this model computes with in a tensor-parallel group (1 = whole layers); set
  /// by enter_tensor_parallel() (tensor_parallel.hpp). A KV cache for it holds 1/W of
  /// the key/value heads.
  int tensor_parallel_world() const { return tensor_parallel_world_; }

  /// Called with the layer's index before and after each decoder layer runs (a model
  /// whose layers' weights are partitioned gathers and frees them there).
  ///
  /// Without `after_backward` (a frozen model): not for passes that checkpoint (the
  /// recomputation would run without them). With it (a trained model, ZeRO stage 3):
  /// every pass with autograd on runs each layer checkpointed, so autograd keeps no
  /// reference to the gathered weights, and the backward calls `before(layer)` again
  /// before recomputing the layer and `after_backward(layer)` once that layer's
  /// parameter gradients are complete (instead of `after`). Such passes cannot use a KV
  /// cache (troupe::Error). `before_backward`, when set, is called there instead of
  /// `before` (the backward visits the layers in reverse: a hook that prefetches looks
  /// the other way). A layer whose run throws still gets `after`.
  struct LayerHooks {
    std::function<void(int64_t)> before, after;
    std::function<void(int64_t)> after_backward;
    std::function<void(int64_t)> before_backward;
  };
  void set_layer_hooks(LayerHooks hooks) { layer_hooks_ = std::move(hooks); }
  const LayerHooks& layer_hooks() const { return layer_hooks_; }
  /// Whether layer hooks are set: the layers' weights are partitioned over ranks, and
  /// every rank must run each pass (one with no rows runs a one-token pass instead).
  bool has_layer_hooks() const { return static_cast<bool>(layer_hooks_.before); }

  /// Final hidden states (B, T, E), what the LM head and the value head read
  /// (E = word_embed_proj_dim for OPT, hidden_size otherwise).
  virtual torch::Tensor hidden_states(const DecoderInputs& inputs) = 0;

  /// Logits (B, T, V).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& position_ids = {}, KVCache* cache = nullptr);
  torch::Tensor lm_logits(const torch::Tensor& hidden);

  /// Adds `v_head = Linear(E, 1, bias=False)` (critic and reward models).
  void add_value_head();
  bool has_value_head() const { return !v_head.is_empty(); }
  /// One value per token (B, T) from hidden states (B, T, E).
  torch::Tensor values(const torch::Tensor& hidden);

  /// Every linear layer by its Hugging Face module name ("model.layers.0.self_attn.q_proj").
  std::vector<std::pair<std::string, Linear>> linear_layers();

  /// The input embedding (V, E), shared with the LM head when tied.
  virtual torch::Tensor input_embedding_weight() = 0;

  Linear lm_head{nullptr};
  Linear v_head{nullptr};

 protected:
  /// Registers the LM head last, as Hugging Face orders it; tied to the embedding when
  /// the config says so.
  void register_lm_head(const torch::Tensor& embedding_weight);

  /// Position ids (B, T) counted over real tokens of the mask's last T columns; pads get
  /// `pad_position`.
  static torch::Tensor default_position_ids(const torch::Tensor& attention_mask, int64_t new_tokens,
                                            int64_t pad_position);

  /// The attention context of a pass: causal within the new tokens, padding masked,
  /// every position allowed to see itself (so a pad row never has nothing to attend).
  static AttentionContext make_attention_context(const DecoderInputs& inputs, const torch::Tensor& full_mask,
                                                 torch::ScalarType dtype);

  /// The token embeddings (B, T, E) of `inputs.input_ids` from `table`; for a pass that
  /// trains a tied LM head, through tied_embedding_lookup (one (V, E) gradient, not three).
  static torch::Tensor embed_tokens(torch::nn::Embedding& table, const DecoderInputs& inputs);

  /// The mask (B, P + T) of a pass, all ones when the caller gave none.
  static torch::Tensor full_attention_mask(const DecoderInputs& inputs);

  /// Runs decoder layer `layer` as `fn` on the hidden state h (B, T, C): checkpointed
  /// when gradient checkpointing is on and the pass trains, directly otherwise. `fn`
  /// captures by value what it reads besides h (see LayerFn).
  torch::Tensor run_layer(torch::nn::Module& layer, const torch::Tensor& h, const AttentionContext& context,
                          const LayerFn& fn);

  /// Layers keep a reference to it, so set_dropout reaches every one.
  Config config_;

 private:
  std::string name_or_path_;
  bool gradient_checkpointing_ = false;
  int tensor_parallel_world_ = 1;
  LayerHooks layer_hooks_;

  friend void set_dropout(CausalLMImpl& model, double p);
  friend void enter_tensor_parallel(CausalLMImpl& model, const TensorParallelRank& rank);
  friend void leave_tensor_parallel(CausalLMImpl& model);
};

/// Sets the residual, attention and embedding dropout probability every layer uses in
/// training mode (DeepSpeed-Chat's --dropout; until called, the config's value holds).
/// Throws troupe::Error for p outside [0, 1].
void set_dropout(CausalLMImpl& model, double p);

/// Models are shared: actors, the hybrid engine and generation hold the same one.
using CausalLM = std::shared_ptr<CausalLMImpl>;

/// Attention over heads: q (B, H, T, D), k and v (B, H_kv, S, D) with H a multiple of
/// H_kv, k and v in q's dtype or the cache's. Decode steps on CPU (context.decode, no
/// dropout) run kernels::decode_attention over the cache's storage in place; other
/// passes SDPA with the additive mask. Returns (B, T, H * D).
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const AttentionContext& context, double dropout, bool training);

/// Builds the decoder of `config.family` with freshly initialised weights.
CausalLM make_causal_lm(const Config& config);

}  // namespace troupe::models
