#include <troupe/engine/hybrid_scoring.hpp>

#include <algorithm>

#include <torch/torch.h>

#include <troupe/kernels/logprob_gather.hpp>

namespace troupe::engine {
namespace {

void check_sequences(const char* where, const torch::Tensor& sequences, const torch::Tensor& mask) {
  TORCH_CHECK(sequences.dim() == 2, where, ": sequences must be (B, T), got ", sequences.sizes());
  TORCH_CHECK(sequences.size(1) >= 2, where, ": sequences need at least 2 positions, got ", sequences.sizes());
  TORCH_CHECK(!mask.defined() || mask.sizes() == sequences.sizes(), where, ": mask ", mask.sizes(),
              " must match sequences ", sequences.sizes());
}

int64_t rows_per_chunk(const ScoringOptions& options, int64_t rows, int64_t positions, int64_t vocab) {
  if (options.rows_per_chunk > 0) return std::min(options.rows_per_chunk, rows);
  const int64_t row_bytes = std::max<int64_t>(1, positions * vocab * 4);
  return std::clamp<int64_t>(options.chunk_bytes / row_bytes, 1, std::max<int64_t>(rows, 1));
}

/// Log-probs (n, T') of `targets` (n, T') under next-token `logits` (n, T', V), fp32:
/// logit[target] - logsumexp read in the logits' own dtype and strides (a view such as
/// logits[:, :-1] is not copied), with no fp32 copy or log-softmax of the chunk.
torch::Tensor chunk_logprobs(const torch::Tensor& logits, const torch::Tensor& targets) {
  return kernels::gather_logprobs(logits, targets);  // (n, T')
}

}  // namespace

void join_partitioned_pass(models::CausalLMImpl& model) {
  if (!model.has_layer_hooks()) return;
  torch::NoGradGuard no_grad;
  const auto device = model.parameters().front().device();
  models::DecoderInputs inputs;
  inputs.input_ids = torch::zeros({1, 1}, torch::TensorOptions().dtype(torch::kLong).device(device));  // (1, 1)
  model.hidden_states(inputs);
}

torch::Tensor logprobs_from_logits(const torch::Tensor& logits, const torch::Tensor& sequences,
                                   const ScoringOptions& options) {
  check_sequences("logprobs_from_logits", sequences, {});
  TORCH_CHECK(logits.dim() == 3 && logits.size(0) == sequences.size(0) && logits.size(1) == sequences.size(1),
              "logprobs_from_logits: logits must be (B, T, V) matching sequences ", sequences.sizes(), ", got ",
              logits.sizes());
  const int64_t b = sequences.size(0), t = sequences.size(1) - 1, v = logits.size(2);
  auto targets = sequences.narrow(1, 1, t).to(torch::kLong);  // (B, T - 1)
  const int64_t chunk = rows_per_chunk(options, b, t, v);
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < b; start += chunk) {
    const int64_t n = std::min(chunk, b - start);
    parts.push_back(chunk_logprobs(logits.narrow(0, start, n).narrow(1, 0, t), targets.narrow(0, start, n)));
  }
  return torch::cat(parts, 0);  // (B, T - 1)
}

torch::Tensor sequence_logprobs(models::CausalLMImpl& model, const torch::Tensor& sequences, const torch::Tensor& mask,
                                const ScoringOptions& options) {
  check_sequences("sequence_logprobs", sequences, mask);
  const int64_t b = sequences.size(0), t = sequences.size(1) - 1;
  if (b == 0) {
    join_partitioned_pass(model);
    return torch::zeros({0, t}, sequences.options().dtype(torch::kFloat32));
  }
  TORCH_CHECK(options.first_position >= 0 && options.first_position < t, "sequence_logprobs: first_position ",
              options.first_position, " must be in [0, T - 1 = ", t, ")");
  const int64_t first = options.first_position, scored = t - first;
  auto hidden = model.hidden_states({sequences, mask, {}, nullptr});  // (B, T, E)
  auto targets = sequences.narrow(1, first + 1, scored).to(torch::kLong);  // (B, S) with S = T - 1 - first
  const int64_t chunk = rows_per_chunk(options, b, scored, model.config().vocab_size);
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < b; start += chunk) {
    const int64_t n = std::min(chunk, b - start);
    // The LM head runs per chunk: only one chunk's (n, S, V) logits exist at a time
    // (without autograd; with it, each chunk's logits are kept for the backward).
    auto logits = model.lm_logits(hidden.narrow(0, start, n).narrow(1, first, scored));  // (n, S, V)
    parts.push_back(chunk_logprobs(logits, targets.narrow(0, start, n)));
  }
  auto scored_logprobs = torch::cat(parts, 0);  // (B, S)
  if (first == 0) return scored_logprobs;       // (B, T - 1)
  return torch::constant_pad_nd(scored_logprobs, {first, 0}, 0.0);  // (B, T - 1), 0 before first_position
}

torch::Tensor sequence_values(models::CausalLMImpl& critic, const torch::Tensor& sequences, const torch::Tensor& mask) {
  check_sequences("sequence_values", sequences, mask);
  TORCH_CHECK(critic.has_value_head(), "sequence_values: the critic has no value head");
  if (sequences.size(0) == 0) {
    join_partitioned_pass(critic);
    return torch::zeros({0, sequences.size(1) - 1}, sequences.options().dtype(torch::kFloat32));
  }
  auto values = critic.values(critic.hidden_states({sequences, mask, {}, nullptr}));  // (B, T)
  return values.narrow(1, 0, values.size(1) - 1);                                     // (B, T - 1)
}

torch::Tensor end_positions(const torch::Tensor& mask, int64_t prompt_length) {
  TORCH_CHECK(mask.dim() == 2, "end_positions: mask must be (B, T), got ", mask.sizes());
  TORCH_CHECK(prompt_length >= 1 && prompt_length <= mask.size(1), "end_positions: prompt_length ", prompt_length,
              " must be in [1, T = ", mask.size(1), "]");
  auto answer = mask.narrow(1, prompt_length, mask.size(1) - prompt_length).ne(0).to(torch::kLong);  // (B, T - P)
  // Real answer tokens before the first pad: a running product stays 1 until then.
  auto answer_length = answer.cumprod(1).sum(1);  // (B)
  return answer_length + (prompt_length - 1);     // (B)
}

torch::Tensor end_scores(models::CausalLMImpl& reward_model, const torch::Tensor& sequences, const torch::Tensor& mask,
                         int64_t prompt_length) {
  check_sequences("end_scores", sequences, mask);
  TORCH_CHECK(mask.defined(), "end_scores: needs the attention mask to find each row's end");
  TORCH_CHECK(reward_model.has_value_head(), "end_scores: the reward model has no value head");
  if (sequences.size(0) == 0) {
    join_partitioned_pass(reward_model);
    return torch::zeros({0}, sequences.options().dtype(torch::kFloat32));
  }
  auto values = reward_model.values(reward_model.hidden_states({sequences, mask, {}, nullptr}));  // (B, T)
  auto ends = end_positions(mask, prompt_length).to(values.device());                             // (B)
  return values.gather(1, ends.unsqueeze(1)).squeeze(1);                                         // (B)
}

}  // namespace troupe::engine
