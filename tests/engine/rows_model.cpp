// The mode table's single-model modes (mode_table.hpp): the whole model, LoRA fused and
// unfused against the adapters merged by hand, gradient checkpointing, and the engine's
// bf16 autocast. Also the helpers every mode shares.
#include <algorithm>
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

#include <torch/torch.h>

#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>

#include "../models/model_fixtures.hpp"
#include "mode_table.hpp"
#include "../models/autograd_graph.hpp"

namespace troupe::test {

models::CausalLM load_fixture_model(const std::string& family, torch::Device device) {
  models::LoadOptions options;
  options.device = device;
  auto model = models::load_pretrained(fixture_dir(family), options);
  models::set_dropout(*model, 0.0);
  model->eval();
  return model;
}

ModeRun score(models::CausalLMImpl& model, const ModeInput& input) {
  torch::NoGradGuard no_grad;
  const auto ids = input.input_ids.to(input.device), mask = input.attention_mask.to(input.device);
  ModeRun run;
  run.logits = model.forward(ids, mask).to(torch::kCPU, torch::kFloat32);                      // (B, T, V)
  run.logprobs = engine::sequence_logprobs(model, ids, mask).to(torch::kCPU, torch::kFloat32);  // (B, T - 1)
  return run;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.numel() == 0) return 0;
  return (a.detach().to(torch::kCPU, torch::kDouble) - b.detach().to(torch::kCPU, torch::kDouble))
      .abs()
      .max()
      .item<double>();
}

namespace {

/// Rank-4 adapters (alpha 8, scale 2) on every layer but the heads, with B drawn
/// non-zero so they change the outputs.
void add_trained_adapters(models::CausalLMImpl& model) {
  torch::manual_seed(21);
  models::apply_lora(model, {4, 8.0, 0.0, ""});
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : model.linear_layers())
    if (linear->has_lora()) linear->lora_B.normal_(0, 0.1);
}

/// The fixture with each adapter of `adapted` merged into its weight by hand:
/// W + scale * B A, summed in float64 and stored in the weight's layout.
models::CausalLM merged_by_hand(models::CausalLMImpl& adapted, const ModeInput& input) {
  auto merged = load_fixture_model(input.family, input.device);
  std::map<std::string, models::Linear> targets;
  for (auto& [name, linear] : merged->linear_layers()) targets.emplace(name, linear);
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : adapted.linear_layers()) {
    if (!linear->has_lora()) continue;
    const double scale = linear->lora_alpha() / static_cast<double>(linear->lora_rank());
    auto delta = torch::mm(linear->lora_B.to(torch::kDouble), linear->lora_A.to(torch::kDouble)) * scale;  // (out, in)
    if (linear->options().transposed()) delta = delta.t();  // GPT-2's Conv1D stores (in, out)
    auto& weight = targets.at(name)->weight;
    weight.copy_(weight.to(torch::kDouble) + delta);
  }
  return merged;
}

/// The LoRA row: the adapted model (fused or not) against the merged one.
ModeRun run_lora(const ModeInput& input, bool fused) {
  auto model = load_fixture_model(input.family, input.device);
  add_trained_adapters(*model);
  auto merged = merged_by_hand(*model, input);
  if (fused) models::fuse_lora(*model);
  auto run = score(*model, input);
  run.expected_logits = score(*merged, input).logits;
  int64_t adapters = 0, fused_adapters = 0;
  for (auto& [name, linear] : model->linear_layers()) {
    adapters += linear->has_lora();
    fused_adapters += linear->lora_fused();
  }
  if (adapters == 0) run.vacuous.push_back("no layer got an adapter");
  if (fused_adapters != (fused ? adapters : 0)) run.vacuous.push_back("the adapters are not all fused or all unfused");
  // Real positions only: the merged model's logits must be far from the base's.
  const auto real = (input.attention_mask != 0).unsqueeze(-1).expand_as(input.logits);
  if (max_abs_diff(run.expected_logits.masked_select(real), input.logits.masked_select(real)) < 1e-2)
    run.vacuous.push_back("the adapters move the logits by less than 1e-2");
  return run;
}

struct TrainingPass {
  torch::Tensor logits;    // (B, T, V)
  torch::Tensor logprobs;  // (B, T - 1)
  std::map<std::string, torch::Tensor> grads;
  int checkpoints = 0;
};

/// A training-mode forward and the backward of the mean negative log-prob of the real
/// next tokens, with checkpointing on or off.
TrainingPass training_pass(models::CausalLMImpl& model, const ModeInput& input, bool checkpointing) {
  const auto ids = input.input_ids.to(input.device), mask = input.attention_mask.to(input.device);
  model.set_gradient_checkpointing(checkpointing);
  model.train();
  model.zero_grad();
  auto logits = model.forward(ids, mask);                    // (B, T, V)
  auto logprobs = engine::logprobs_from_logits(logits, ids);  // (B, T - 1)
  const auto scored = (mask.narrow(1, 0, ids.size(1) - 1) * mask.narrow(1, 1, ids.size(1) - 1)).to(torch::kFloat32);
  auto loss = -(logprobs * scored).sum() / scored.sum();
  TrainingPass pass;
  pass.checkpoints = count_checkpoints(loss);
  loss.backward();
  pass.logits = logits.detach().to(torch::kCPU);
  pass.logprobs = logprobs.detach().to(torch::kCPU);
  for (const auto& p : model.named_parameters())
    if (p.value().grad().defined()) pass.grads[p.key()] = p.value().grad().to(torch::kCPU).clone();
  return pass;
}

}  // namespace

ModeRun run_whole(const ModeInput& input) {
  auto model = load_fixture_model(input.family, input.device);
  return score(*model, input);
}

ModeRun run_lora_fused(const ModeInput& input) { return run_lora(input, true); }

ModeRun run_lora_unfused(const ModeInput& input) { return run_lora(input, false); }

ModeRun run_checkpointed(const ModeInput& input) {
  auto model = load_fixture_model(input.family, input.device);
  const auto plain = training_pass(*model, input, false);
  const auto checkpointed = training_pass(*model, input, true);
  ModeRun run{checkpointed.logits, checkpointed.logprobs, {}, {}, {}};
  double grads = 0;
  for (const auto& [name, grad] : plain.grads) {
    const auto other = checkpointed.grads.find(name);
    if (other == checkpointed.grads.end()) {
      run.vacuous.push_back("no gradient for " + name + " with checkpointing");
      continue;
    }
    grads = std::max(grads, max_abs_diff(other->second, grad));
  }
  run.extra.emplace_back("grads", grads);
  const auto layers = model->config().num_layers;
  if (plain.checkpoints != 0 || checkpointed.checkpoints != layers)
    run.vacuous.push_back("checkpointed " + std::to_string(checkpointed.checkpoints) + " of " +
                          std::to_string(layers) + " layers (plain pass: " + std::to_string(plain.checkpoints) + ")");
  if (plain.grads.size() != model->parameters().size()) run.vacuous.push_back("some parameter got no gradient");
  return run;
}

ModeRun run_bf16_autocast(const ModeInput& input) {
  engine::TrainOptions options;
  options.compute_dtype = torch::kBFloat16;
  engine::TrainEngine trainer(load_fixture_model(input.family, input.device), options);
  ModeRun run;
  trainer.evaluate([&](models::CausalLMImpl& model) { run = score(model, input); });  // under the engine's autocast
  const auto real = (input.attention_mask != 0).unsqueeze(-1).expand_as(input.logits);
  if (max_abs_diff(run.logits.masked_select(real), input.logits.masked_select(real)) < 1e-4)
    run.vacuous.push_back("within 1e-4 of fp32: autocast did not compute in bf16");
  return run;
}

}  // namespace troupe::test
