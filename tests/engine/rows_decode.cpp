// The mode table's generation modes (mode_table.hpp): the first positions prefilled
// into a KV cache, the last ones decoded token by token through it, as
// models::generate runs; plain, and in the packed inference layout (fp32 and bf16
// weights, the cache in the same dtype, as generation keeps it).
#include <string>
#include <vector>

#include <torch/torch.h>

#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/models/kv_cache.hpp>

#include "mode_table.hpp"

namespace troupe::test {
namespace {

/// Positions decoded one token at a time; the fixture's shortest row (4 real tokens of
/// 12) is all padding in the prefill, as a short prompt in a batch is.
constexpr int64_t kDecoded = 6;

/// Logits (B, T, V) of the prefill of T - kDecoded positions and kDecoded one-token
/// steps over a cache in `cache_dtype`, and the log-probs (B, T - 1) they give.
ModeRun decode(models::CausalLMImpl& model, const ModeInput& input, torch::ScalarType cache_dtype) {
  torch::NoGradGuard no_grad;
  const auto ids = input.input_ids.to(input.device), mask = input.attention_mask.to(input.device);
  const int64_t b = ids.size(0), t = ids.size(1), prefill = t - kDecoded;
  models::KVCache cache(model.config(), b, t, torch::TensorOptions().dtype(cache_dtype).device(input.device));
  std::vector<torch::Tensor> parts{model.forward(ids.narrow(1, 0, prefill), mask.narrow(1, 0, prefill), {}, &cache)};
  for (int64_t position = prefill; position < t; ++position)  // (B, 1, V) each
    parts.push_back(model.forward(ids.narrow(1, position, 1), mask.narrow(1, 0, position + 1), {}, &cache));
  auto logits = torch::cat(parts, 1);  // (B, T, V)
  ModeRun run;
  run.logits = logits.to(torch::kCPU, torch::kFloat32);
  run.logprobs = engine::logprobs_from_logits(logits, ids).to(torch::kCPU);
  if (cache.length() != t)
    run.vacuous.push_back("the cache holds " + std::to_string(cache.length()) + " positions, not " + std::to_string(t));
  return run;
}

ModeRun decode_packed(const ModeInput& input, torch::ScalarType dtype) {
  auto model = load_fixture_model(input.family, input.device);
  models::InferenceLayout layout;
  layout.enter(*model, dtype);
  auto run = decode(*model, input, dtype);
  const auto packed = layout.layers();
  layout.leave(*model);
  if (packed != static_cast<int64_t>(model->linear_layers().size()))
    run.vacuous.push_back("only " + std::to_string(packed) + " linear layers were packed");
  return run;
}

}  // namespace

ModeRun run_kv_decode(const ModeInput& input) {
  auto model = load_fixture_model(input.family, input.device);
  return decode(*model, input, torch::kFloat32);
}

ModeRun run_packed_fp32(const ModeInput& input) { return decode_packed(input, torch::kFloat32); }

ModeRun run_packed_bf16(const ModeInput& input) {
  auto run = decode_packed(input, torch::kBFloat16);
  const auto real = (input.attention_mask != 0).unsqueeze(-1).expand_as(input.logits);
  if (max_abs_diff(run.logits.masked_select(real), input.logits.masked_select(real)) < 1e-4)
    run.vacuous.push_back("within 1e-4 of fp32: the layout did not compute with bf16 weights");
  return run;
}

}  // namespace troupe::test
