#include <troupe/models/causal_lm.hpp>

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include <troupe/kernels/decode_attention.hpp>

#include "families.hpp"
#include "recast_linear.hpp"
#include "tied_embedding.hpp"

namespace troupe::models {

torch::Tensor CausalLMImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                    const torch::Tensor& position_ids, KVCache* cache) {
  DecoderInputs inputs{input_ids, attention_mask, position_ids, cache};
  const auto embedding = input_embedding_weight();
  const bool trains_tied_head = config_.tie_word_embeddings && lm_head->weight.is_same(embedding) &&
                                !lm_head->has_lora() && embedding.requires_grad() && torch::GradMode::is_enabled();
  torch::Tensor head_weight;  // (V, E)
  if (trains_tied_head) inputs.tied_head_weight = &head_weight;
  auto hidden = hidden_states(inputs);  // (B, T, E)
  if (!head_weight.defined()) return lm_logits(hidden);
  if (recasts_under_autocast(hidden, head_weight)) return recast_linear(hidden, head_weight, {}, false);  // (B, T, V)
  return torch::matmul(hidden, head_weight.t());  // (B, T, V)
}

torch::Tensor CausalLMImpl::embed_tokens(torch::nn::Embedding& table, const DecoderInputs& inputs) {
  if (!inputs.tied_head_weight) return table->forward(inputs.input_ids);
  auto lookup = tied_embedding_lookup(table->weight, inputs.input_ids);
  *inputs.tied_head_weight = lookup.head_weight;
  return lookup.embeddings;  // (B, T, E)
}

torch::Tensor CausalLMImpl::lm_logits(const torch::Tensor& hidden) {
  // Decoding feeds a few rows (B, E) against a vocabulary-sized weight (V, E). BLAS
  // runs that shape far faster as W h^T (V, B) than as h W^T (B, V): 3x for OPT-125m's
  // head at B = 8 on a 2-core AVX2 machine (bench/generate_vs_transformers.py).
  if (hidden.dim() == 2 && hidden.size(0) <= 32 && !lm_head->has_lora() && !lm_head->uses_packed()) {
    return torch::mm(lm_head->weight, hidden.t()).t();  // (B, V)
  }
  return lm_head->forward(hidden);
}

void CausalLMImpl::register_lm_head(const torch::Tensor& embedding_weight) {
  auto options = LinearOptions(embedding_weight.size(1), embedding_weight.size(0)).bias(false);
  if (config_.tie_word_embeddings) options.tied_weight(embedding_weight);
  lm_head = register_module("lm_head", Linear(options));
}

void CausalLMImpl::add_value_head() {
  if (has_value_head()) return;
  const auto e = input_embedding_weight().size(1);
  v_head = register_module("v_head", Linear(LinearOptions(e, 1).bias(false)));
  v_head->to(input_embedding_weight().device(), input_embedding_weight().scalar_type());
}

torch::Tensor CausalLMImpl::values(const torch::Tensor& hidden) {
  TORCH_CHECK(has_value_head(), "values() needs a value head: call add_value_head() first");
  return v_head->forward(hidden).squeeze(-1);  // (B, T)
}

std::vector<std::pair<std::string, Linear>> CausalLMImpl::linear_layers() {
  std::vector<std::pair<std::string, Linear>> out;
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    if (auto linear = std::dynamic_pointer_cast<LinearImpl>(item.value())) out.emplace_back(item.key(), Linear(linear));
  }
  return out;
}

torch::Tensor CausalLMImpl::run_layer(torch::nn::Module& layer, const torch::Tensor& h, const AttentionContext& context,
                                      const LayerFn& fn) {
  const bool grad = torch::GradMode::is_enabled();
  // Partitioned trained weights: a layer with autograd on must be recomputed in the
  // backward, because its gathered weights are freed as soon as it has run.
  const bool partitioned = static_cast<bool>(layer_hooks_.after_backward);
  if (partitioned && grad && context.cache)
    throw Error("run_layer: layer " + std::to_string(context.layer) +
                " has partitioned weights (ZeRO stage 3) and cannot run with autograd over a KV cache");
  const bool checkpoint = grad && !context.cache && (partitioned || (gradient_checkpointing_ && is_training()));
  if (checkpoint && !partitioned) return run_checkpointed(fn, h, layer.parameters());
  const int64_t index = context.layer;
  if (layer_hooks_.before) layer_hooks_.before(index);
  torch::Tensor out;
  try {
    if (!checkpoint) {
      out = fn(h);
    } else {
      RecomputeHooks recompute{[hooks = layer_hooks_, index] {
                                 hooks.before_backward ? hooks.before_backward(index) : hooks.before(index);
                               },
                               [hooks = layer_hooks_, index] { hooks.after_backward(index); }};
      out = run_checkpointed(fn, h, layer.parameters(), std::move(recompute));
    }
  } catch (...) {
    // Partitioned weights go back even so: the next pass gathers the layer afresh.
    if (layer_hooks_.after) layer_hooks_.after(index);
    throw;
  }
  if (layer_hooks_.after) layer_hooks_.after(index);
  return out;
}

void set_dropout(CausalLMImpl& model, double p) {
  if (!(p >= 0.0 && p <= 1.0)) throw Error("set_dropout: probability must be in [0, 1], got " + std::to_string(p));
  model.config_.dropout = static_cast<float>(p);
}

torch::Tensor CausalLMImpl::full_attention_mask(const DecoderInputs& in) {
  if (in.attention_mask.defined()) return in.attention_mask;
  const int64_t past = in.cache ? in.cache->length() : 0;
  return torch::ones({in.input_ids.size(0), past + in.input_ids.size(1)},
                     torch::TensorOptions().dtype(torch::kLong).device(in.input_ids.device()));
}

torch::Tensor CausalLMImpl::default_position_ids(const torch::Tensor& attention_mask, int64_t new_tokens,
                                                 int64_t pad_position) {
  auto mask = attention_mask.to(torch::kLong);  // (B, S)
  auto real = mask > 0;
  auto positions = real.to(torch::kLong).cumsum(-1) - 1;  // (B, S): real tokens counted, as transformers does
  // A packed mask (packed_batch.hpp) restarts the count at each sample: a token's position
  // is its distance from its sample's first column. Chosen without a host sync, so a
  // plain 0/1 mask keeps the count above even with holes in it.
  auto segment = mask.abs();
  auto columns = torch::arange(mask.size(1), mask.options()).expand_as(mask);                        // (B, S)
  auto starts = torch::ne(segment, torch::roll(segment, 1, 1)).logical_or_(columns == 0);            // (B, S)
  auto from_start = columns - std::get<0>(torch::cummax(columns * starts.to(torch::kLong), 1));     // (B, S)
  auto packed = torch::logical_or(mask.min() < 0, mask.max() > 1);                                  // ()
  positions = torch::where(packed, from_start, positions);
  positions.masked_fill_(real.logical_not(), pad_position);
  return positions.narrow(1, positions.size(1) - new_tokens, new_tokens);  // (B, T)
}

namespace {

/// The additive mask (B, 1, T, S) of a pass with T new tokens over the mask (B, S):
/// causal within the new tokens, padding masked, every position allowed to see itself
/// (`see_self`; a cache with per-row lengths puts each row's new token at its own
/// position, which the mask itself marks).
torch::Tensor build_additive_mask(const torch::Tensor& mask, int64_t t, torch::ScalarType dtype, bool see_self) {
  const auto full_mask = mask.scalar_type() == torch::kBool ? mask.to(torch::kLong) : mask;  // (B, S)
  const int64_t s = full_mask.size(1);
  const int64_t past = s - t;
  auto device = full_mask.device();
  auto query_pos = torch::arange(past, s, torch::TensorOptions().dtype(torch::kLong).device(device)).view({t, 1});
  auto key_pos = torch::arange(0, s, torch::TensorOptions().dtype(torch::kLong).device(device)).view({1, s});
  auto causal = key_pos <= query_pos;                     // (T, S)
  auto padding = (full_mask > 0).view({-1, 1, 1, s});     // (B, 1, 1, S)
  auto self = (key_pos == query_pos);                     // (T, S)
  auto allowed = torch::logical_and(causal, padding);  // (B, 1, T, S)
  // A packed mask confines each query to its own sample: segment k's tokens are k, its
  // padding -k. A 0 (padding of a plain mask, or after the last sample) attends as before,
  // so for a 0/1 mask this changes nothing.
  auto query_segment = full_mask.narrow(1, past, t).abs().view({-1, 1, t, 1});  // (B, 1, T, 1)
  auto same_sample = torch::logical_or(query_segment == 0, query_segment == full_mask.view({-1, 1, 1, s}));
  allowed.logical_and_(same_sample);
  if (see_self) allowed = torch::logical_or(allowed, self);
  return torch::zeros(allowed.sizes(), torch::TensorOptions().dtype(dtype).device(device))
      .masked_fill_(allowed.logical_not(), -std::numeric_limits<float>::infinity());
}

bool float_or_bf16(torch::ScalarType t) { return t == torch::kFloat32 || t == torch::kBFloat16; }

/// Whether decode_attention serves this call: a decode step on CPU (no CUDA kernel is
/// wired here yet) in dtypes it reads, and no dropout to apply.
bool use_decode_kernel(const torch::Tensor& q, const AttentionContext& context, double dropout, bool training) {
  if (!context.decode || !context.cache || q.size(2) != 1 || !q.is_cpu()) return false;
  if (training && dropout > 0.0) return false;
  return float_or_bf16(q.scalar_type()) && float_or_bf16(context.cache->dtype());
}

}  // namespace

const torch::Tensor& AttentionContext::additive_mask() const {
  if (!additive->defined())
    *additive = build_additive_mask(key_mask, new_tokens, dtype, /*see_self=*/!(cache && cache->per_row()));
  return *additive;
}

AttentionContext CausalLMImpl::make_attention_context(const DecoderInputs& in, const torch::Tensor& full_mask,
                                                      torch::ScalarType dtype) {
  const int64_t t = in.input_ids.size(1);
  const int64_t s = full_mask.size(1);
  const int64_t past = s - t;
  TORCH_CHECK(past == (in.cache ? in.cache->length() : 0), "attention_mask has ", s,
              " columns but the cache holds ", (in.cache ? in.cache->length() : 0), " positions and input_ids ", t);
  AttentionContext context;
  context.cache = in.cache;
  context.new_tokens = t;
  context.dtype = dtype;
  context.decode = in.cache && t == 1 && !torch::GradMode::is_enabled();
  // The decode kernel reads integer masks as they are; a float mask is compared once.
  context.key_mask = full_mask.is_floating_point() ? (full_mask != 0) : full_mask;
  // Prefill and training: the additive mask, made once per pass rather than in every layer.
  if (!context.decode) context.additive_mask();
  return context;
}

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const AttentionContext& context, double dropout, bool training) {
  if (use_decode_kernel(q, context, dropout, training)) {
    // The cache's storage in place (k, v are views of it): no copy of the history, no mask.
    const auto storage = context.cache->layer_storage(context.layer);
    TORCH_CHECK(storage.length == k.size(2), "attend: layer ", context.layer, " of the cache holds ", storage.length,
                " positions but k has ", k.size(2));
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    auto out = kernels::decode_attention(q.select(2, 0), storage.keys, storage.values, storage.length,
                                         context.key_mask, scale, storage.row_lengths);  // (B, H, D)
    return out.view({q.size(0), 1, q.size(1) * q.size(3)});          // (B, 1, H * D)
  }
  // A cache may hold another dtype than the model computes in (bf16 for an fp32 model).
  const auto kq = k.scalar_type() == q.scalar_type() ? k : k.to(q.scalar_type());
  const auto vq = v.scalar_type() == q.scalar_type() ? v : v.to(q.scalar_type());
  const bool gqa = q.size(1) != kq.size(1);
  auto out = at::scaled_dot_product_attention(q, kq, vq, context.additive_mask(), training ? dropout : 0.0,
                                              /*is_causal=*/false, std::nullopt, gqa);  // (B, H, T, D)
  return out.transpose(1, 2).flatten(2);  // (B, T, H * D)
}

CausalLM make_causal_lm(const Config& config) {
  activation(config.activation, torch::zeros({1}));  // reject an unsupported activation up front
  switch (config.family) {
    case Family::Opt: return make_opt(config);
    case Family::Gpt2: return make_gpt2(config);
    case Family::Llama: return make_llama(config);
  }
  throw Error("unknown model family");
}

}  // namespace troupe::models
