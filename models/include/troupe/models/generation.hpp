#pragma once
/// Batched autoregressive generation with a KV cache: greedy or sampled (temperature,
/// top-k, top-p), per-sequence EOS stop, seeded.
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include <troupe/models/causal_lm.hpp>
#include <troupe/models/kv_cache.hpp>

namespace troupe::models {

struct GenerationOptions {
  int64_t max_new_tokens = 16;
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;     ///< 0 = off
  double top_p = 1.0;    ///< 1 = off
  uint64_t seed = 0;
  /// A sequence stops after emitting any of these; empty = the config's eos.
  std::vector<int64_t> eos_token_ids;
  /// Written after a sequence stopped; unset = the config's pad, else its eos.
  std::optional<int64_t> pad_token_id;
  /// The dtype of the packed weights the decode kernels read (inference_layout.hpp)
  /// when the model has no inference layout attached: fp32 or bf16; unset = bf16 for a
  /// bf16 model, fp32 otherwise.
  std::optional<torch::ScalarType> inference_dtype;
  /// false: compute with the model's own weights (LoRA adapters applied unfused, the
  /// BLAS path) instead of entering a packed inference layout, so generation holds no
  /// copy of the weights. Slower decoding; for models whose copy would not fit.
  bool pack_weights = true;
};

struct GenerationResult {
  torch::Tensor sequences;       // (B, T0 + N) prompt then generated tokens, pad after EOS
  torch::Tensor attention_mask;  // (B, T0 + N) 1 = real token (prompt or generated, EOS included)
  int64_t prompt_length = 0;     // T0
};

/// Generates continuations of left-padded prompts `input_ids` (B, T0) with
/// `attention_mask` (B, T0). Runs without autograd; stops early once every sequence
/// has ended. The number of new columns N is at most `max_new_tokens`. Computes with
/// the model's inference layout, entering one for the call when none is attached.
GenerationResult generate(CausalLMImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                          const GenerationOptions& options);
/// As above, over a caller-owned KV cache (length 0, batch B, room for T0 +
/// max_new_tokens), so a caller that generates repeatedly allocates it once.
GenerationResult generate(CausalLMImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                          const GenerationOptions& options, KVCache& cache);

/// Turns next-token logits (B, V) into token ids (B) following `options`
/// (argmax when not sampling). Exposed for tests and for other decoders.
torch::Tensor pick_next_tokens(const torch::Tensor& logits, const GenerationOptions& options, at::Generator& generator);

}  // namespace troupe::models
