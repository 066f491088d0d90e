#include <troupe/models/generation.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/models/tensor_parallel.hpp>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/kernels/sampling.hpp>

namespace troupe::models {

torch::Tensor pick_next_tokens(const torch::Tensor& logits, const GenerationOptions& options, at::Generator& generator) {
  if (options.do_sample && options.temperature <= 0) {
    throw Error("--temperature must be positive when sampling, got " + std::to_string(options.temperature));
  }
  // Temperature, top-k, top-p and the draw in one pass per row; the same tokens as
  // softmax + at::multinomial for a seed (kernels/include/troupe/kernels/sampling.hpp).
  kernels::SamplingParams params;
  params.do_sample = options.do_sample;
  params.temperature = options.temperature;
  params.top_k = options.top_k;
  params.top_p = options.top_p;
  return kernels::sample_next_tokens(logits, params, generator);
}

GenerationResult generate(CausalLMImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                          const GenerationOptions& options) {
  TORCH_CHECK(input_ids.dim() == 2, "generate: input_ids must be (B, T), got ", input_ids.sizes());
  if (options.max_new_tokens < 0) throw Error("max_new_tokens must be >= 0");
  // The cache holds keys and values in the inference dtype: bf16 halves what a decode step reads.
  // Unpacked, the model computes in its own dtype and the cache follows it.
  const auto dtype = resolve_inference_dtype(model, options.pack_weights ? options.inference_dtype : std::nullopt);
  KVCache cache(tensor_parallel_cache_config(model.config(), model.tensor_parallel_world()), input_ids.size(0), input_ids.size(1) + options.max_new_tokens,
                torch::TensorOptions().dtype(dtype).device(input_ids.device()));
  return generate(model, input_ids, attention_mask, options, cache);
}

GenerationResult generate(CausalLMImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                          const GenerationOptions& options, KVCache& cache) {
  TORCH_CHECK(input_ids.dim() == 2, "generate: input_ids must be (B, T), got ", input_ids.sizes());
  TORCH_CHECK(attention_mask.sizes() == input_ids.sizes(), "generate: attention_mask ", attention_mask.sizes(),
              " must match input_ids ", input_ids.sizes());
  if (options.max_new_tokens < 0) throw Error("max_new_tokens must be >= 0");
  const int64_t b = input_ids.size(0), t0 = input_ids.size(1);
  TORCH_CHECK(cache.length() == 0 && cache.batch() == b && cache.capacity() >= t0 + options.max_new_tokens,
              "generate: the cache must be empty with batch ", b, " and room for ", t0 + options.max_new_tokens,
              " positions; it has length ", cache.length(), ", batch ", cache.batch(), ", capacity ",
              cache.capacity());
  const auto& config = model.config();
  std::vector<int64_t> eos = options.eos_token_ids;
  if (eos.empty() && config.eos_token_id) eos.push_back(*config.eos_token_id);
  const int64_t pad = options.pad_token_id.value_or(config.pad_token_id.value_or(eos.empty() ? 0 : eos.front()));

  std::optional<ScopedInferenceLayout> layout;
  if (options.pack_weights) layout.emplace(model, resolve_inference_dtype(model, options.inference_dtype));
  c10::InferenceMode inference;
  auto device = input_ids.device();
  auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  auto generator = at::globalContext().defaultGenerator(device).clone();
  generator.set_current_seed(options.seed);

  auto mask = attention_mask.to(torch::kLong);
  auto eos_ids = torch::tensor(eos, long_opts);

  std::vector<torch::Tensor> new_tokens, new_mask;
  auto unfinished = torch::ones({b}, long_opts);                    // (B)
  auto next_position = mask.sum(-1, /*keepdim=*/true);              // (B, 1) count of real tokens
  // Only the last position's logits are needed: skip the LM head over the prompt.
  auto last_logits = [&](const torch::Tensor& ids, const torch::Tensor& positions) {
    auto hidden = model.hidden_states({ids, mask, positions, &cache});  // (B, T, E)
    return model.lm_logits(hidden.select(1, hidden.size(1) - 1));       // (B, V)
  };
  auto logits = last_logits(input_ids, {});
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    auto next = pick_next_tokens(logits, options, generator);     // (B)
    next = next * unfinished + pad * (1 - unfinished);
    new_tokens.push_back(next);
    new_mask.push_back(unfinished.clone());
    if (eos_ids.numel() > 0) unfinished = unfinished * (1 - torch::isin(next, eos_ids).to(torch::kLong));
    if (step + 1 == options.max_new_tokens || unfinished.max().item<int64_t>() == 0) break;
    // Every row keeps attending its own history; finished rows only produce pads.
    mask = torch::cat({mask, torch::ones({b, 1}, long_opts)}, 1);
    logits = last_logits(next.unsqueeze(1), next_position);
    next_position = next_position + 1;
  }
  GenerationResult result;
  result.prompt_length = t0;
  if (new_tokens.empty()) {
    result.sequences = input_ids.clone();
    result.attention_mask = attention_mask.to(torch::kLong).clone();
    return result;
  }
  result.sequences = torch::cat({input_ids, torch::stack(new_tokens, 1)}, 1);
  result.attention_mask = torch::cat({attention_mask.to(torch::kLong), torch::stack(new_mask, 1)}, 1);
  return result;
}

}  // namespace troupe::models
