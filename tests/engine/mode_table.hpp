#pragma once
// The mode-consistency table, as llama.cpp's test-backend-ops: each row is a model
// family (the transformers fixtures of tests/reference/make_model_fixtures.py) run in
// one mode (whole, tensor-parallel, LoRA, checkpointed, bf16, KV-cache decode, packed
// inference layout, ZeRO-3, samples packed into one row; on the CPU and on CUDA), and its logits and log-probs are
// compared with the reference: transformers' logits, or for LoRA the same model with
// the adapters merged by hand. Each mode is one function in rows_<group>.cpp; the list
// of rows and the one loop over them are in test_mode_consistency.cpp.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include <troupe/models/causal_lm.hpp>

namespace troupe::test {

/// What every mode of one family reads: the left-padded batch of the fixture's
/// expected.safetensors and transformers' fp32 logits on it (always on the CPU).
struct ModeInput {
  std::string family;  // "opt", "opt_postln", "gpt2", "llama"
  torch::Device device = torch::kCPU;
  torch::Tensor input_ids;       // (B, T) int64
  torch::Tensor attention_mask;  // (B, T) int64, 1 = real token
  torch::Tensor logits;          // (B, T, V) fp32 transformers' (meaningful where the mask is 1)
};

/// What one mode computed, on the CPU.
struct ModeRun {
  torch::Tensor logits;    // (B, T, V) the mode's logits
  torch::Tensor logprobs;  // (B, T - 1) the mode's log-probs of each next token
  /// (B, T, V) when the reference is not transformers' logits (LoRA: the merged model).
  torch::Tensor expected_logits;
  /// Further differences the row's tolerance bounds, by name ("grads", "ranks").
  std::vector<std::pair<std::string, double>> extra;
  /// Why the comparison would prove nothing (the adapters did not matter, nothing was
  /// partitioned, ...); each entry fails the cell.
  std::vector<std::string> vacuous;
};

using ModeFn = std::function<ModeRun(const ModeInput&)>;

struct ModeRow {
  std::string family;
  std::string mode;  // "whole", "tp2", ...
  torch::Device device = torch::kCPU;
  /// Largest |ours - reference| allowed over real positions, for every quantity.
  double tolerance = 1e-4;
  ModeFn run;
};

// --- helpers the modes share (rows_model.cpp) ------------------------------------------

/// The fixture `family` on `device`, dropout 0, in eval mode.
models::CausalLM load_fixture_model(const std::string& family, torch::Device device);

/// Logits (B, T, V) and log-probs (B, T - 1) of a plain pass, as the engine scores
/// (engine::sequence_logprobs), without autograd, on the CPU.
ModeRun score(models::CausalLMImpl& model, const ModeInput& input);

/// Largest |a - b| over the whole tensors, in double, on the CPU.
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b);

// --- the modes, one function each --------------------------------------------------------

ModeRun run_whole(const ModeInput& input);               // rows_model.cpp
ModeRun run_lora_fused(const ModeInput& input);          // rows_model.cpp
ModeRun run_lora_unfused(const ModeInput& input);        // rows_model.cpp
ModeRun run_checkpointed(const ModeInput& input);        // rows_model.cpp
ModeRun run_bf16_autocast(const ModeInput& input);       // rows_model.cpp
ModeRun run_kv_decode(const ModeInput& input);           // rows_decode.cpp
ModeRun run_packed_fp32(const ModeInput& input);         // rows_decode.cpp
ModeRun run_packed_bf16(const ModeInput& input);         // rows_decode.cpp
ModeRun run_tensor_parallel_2(const ModeInput& input);   // rows_ranks.cpp
ModeRun run_zero3_2(const ModeInput& input);             // rows_ranks.cpp
ModeRun run_sequence_packing(const ModeInput& input);    // rows_packing.cpp

}  // namespace troupe::test
