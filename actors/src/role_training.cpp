#include "role_training.hpp"

#include <algorithm>

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/actors/experience_batch.hpp>
#include <troupe/common/error.hpp>
#include <troupe/engine/checkpoint.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>
#include <troupe/rl/micro_batches.hpp>

namespace troupe::actors {

torch::Device device_of(const models::CausalLMImpl& model) { return model.parameters().front().device(); }

int64_t prompt_length_of(const TensorBatch& batch, const std::string& where) {
  return require_tensor(batch, keys::prompt_length, where)[0].item<int64_t>();
}

engine::ScoringOptions answer_scoring(const TensorBatch& batch) {
  engine::ScoringOptions options;
  const auto it = batch.find(keys::prompt_length);
  if (it != batch.end() && it->second.numel() > 0) options.first_position = it->second[0].item<int64_t>() - 1;
  return options;
}

/// The training experience of a train request: its batches concatenated.
std::optional<rl::Experience> training_experience(const std::vector<TensorBatch>& batches) {
  std::vector<rl::Experience> parts;
  for (const auto& batch : batches)
    if (!batch.empty()) parts.push_back(experience_from_batch(batch));
  if (parts.empty()) return std::nullopt;
  auto exp = parts.size() == 1 ? parts.front() : rl::concat(parts);
  if (exp.batch_size() == 0) return std::nullopt;
  return exp;
}

std::function<torch::Tensor(models::CausalLMImpl&)> zero_loss(engine::TrainEngine& trainer, const std::string& role) {
  if (trainer.zero3())
    return [](models::CausalLMImpl& model) {
      models::DecoderInputs token;
      token.input_ids = torch::zeros({1, 1}, torch::TensorOptions().dtype(torch::kLong).device(device_of(model)));
      return model.hidden_states(token).sum() * 0.0;  // (1, 1, E) -> 0
    };
  return [role](models::CausalLMImpl& model) {
    for (const auto& p : model.parameters())
      if (p.requires_grad()) return p.sum() * 0.0;
    throw Error("the " + role + " has no trainable parameter");
  };
}

void check_micro_batching(int64_t max_tokens, const rl::Algorithm& algorithm) {
  if (max_tokens < 0)
    throw Error("--max_tokens_per_microbatch " + std::to_string(max_tokens) + ": must be >= 0 (0 = off)");
  if (max_tokens > 0 && !algorithm.supports_micro_batches())
    throw Error("--max_tokens_per_microbatch " + std::to_string(max_tokens) + ": the algorithm '" + algorithm.name() +
                "' does not declare that its losses can run on micro-batches (rl::Algorithm::supports_micro_batches(): "
                "they must divide by the minibatch's counts, rl/loss_reduction.hpp), so the micro-batches' gradients "
                "might not add up to the minibatch's; run it without --max_tokens_per_microbatch");
}

MinibatchStep minibatch_step(engine::TrainEngine& trainer, const rl::Experience* minibatch, int64_t max_tokens,
                             DataParallel* group, const std::string& role, const BatchLoss& loss_of) {
  using Pass = std::function<torch::Tensor(models::CausalLMImpl&)>;
  auto pass_over = [&](const rl::Experience& rows) -> Pass {
    return [&loss_of, &rows](models::CausalLMImpl& model) { return loss_of(model, rows); };
  };
  MinibatchStep result;
  if (max_tokens == 0) {
    result.step = trainer.micro_step(minibatch ? pass_over(*minibatch) : zero_loss(trainer, role));
    result.micro_batches = minibatch ? 1 : 0;
    return result;
  }
  std::vector<rl::Experience> micro_batches;
  if (minibatch) micro_batches = rl::token_budget_micro_batches(*minibatch, max_tokens);
  result.micro_batches = static_cast<int64_t>(micro_batches.size());
  const int64_t passes = group ? group->max(result.micro_batches) : result.micro_batches;
  if (passes == 0) {  // no rank has rows: one zero-loss step, as without micro-batches
    result.step = trainer.micro_step(zero_loss(trainer, role));
    return result;
  }
  double loss = 0;
  for (int64_t i = 0; i < passes; ++i) {
    const bool has_rows = i < result.micro_batches;
    const Pass pass = has_rows ? pass_over(micro_batches[static_cast<size_t>(i)]) : zero_loss(trainer, role);
    // The last pass steps the optimizer on the gradients of them all.
    result.step = i + 1 < passes ? trainer.partial_step(pass) : trainer.micro_step(pass);
    loss += result.step.loss;
  }
  result.step.loss = loss;
  return result;
}

/// This rank's parameter bytes outside a pass: its chunks and what it keeps whole under
/// ZeRO stage 3, else every parameter.
int64_t param_resident_bytes(const engine::TrainEngine& trainer) {
  if (const auto* zero3 = trainer.zero3()) return zero3->param_resident_bytes();
  int64_t bytes = 0;
  for (const auto& p : trainer.model()->parameters()) bytes += p.numel() * p.element_size();
  return bytes;
}

void add_layout_metrics(Metrics& metrics, const std::string& role, const DataParallel* group,
                        const engine::TrainEngine& trainer) {
  metrics.values[role + "_zero_stage"] = group ? group->zero_stage() : 0;
  metrics.values[role + "_param_resident_mib"] = static_cast<double>(param_resident_bytes(trainer)) / (1 << 20);
}

void load_whole(engine::TrainEngine& trainer, const std::string& path) {
  std::optional<engine::Zero3Partition::FullParameters> whole;
  if (auto* zero3 = trainer.zero3()) whole.emplace(zero3->gather_full_parameters(/*write_back=*/true));
  models::load_weights(*trainer.model(), models::map_checkpoint(path), path);
}

void save_whole(engine::TrainEngine& trainer, const DataParallel* group, const std::function<void()>& write) {
  std::optional<engine::Zero3Partition::FullParameters> whole;
  if (auto* zero3 = trainer.zero3()) whole.emplace(zero3->gather_full_parameters());
  if (!group || group->rank() == 0) write();
}

/// The PPO minibatch steps of one train() call: every minibatch of every epoch. With a
/// data-parallel `group`, as many steps per epoch as the rank with the most rows needs,
/// its rows spread evenly over them; a rank short of rows steps with none
/// (`update(nullptr)` takes a zero-loss step).
Updates ppo_updates(const std::optional<rl::Experience>& exp, const PpoTrainingOptions& ppo, DataParallel* group,
                    const std::function<MinibatchStep(const rl::Experience*)>& update) {
  const int64_t rows = exp ? exp->batch_size() : 0;
  int64_t steps = (rows + ppo.minibatch_size - 1) / ppo.minibatch_size;
  if (group) steps = group->max(steps);
  std::vector<rl::Experience> chunks;
  if (rows > 0) chunks = exp->split(group ? (rows + steps - 1) / steps : ppo.minibatch_size);
  Updates result;
  for (int64_t epoch = 0; epoch < ppo.ppo_epochs; ++epoch)
    for (int64_t i = 0; i < steps; ++i) {
      const bool has_rows = i < static_cast<int64_t>(chunks.size());
      const auto minibatch = update(has_rows ? &chunks[static_cast<size_t>(i)] : nullptr);
      const auto& step = minibatch.step;
      ++result.steps;
      if (has_rows) {
        result.loss += step.loss;
        ++result.counted;
        result.micro_batches += minibatch.micro_batches;
      }
      if (step.optimizer_stepped) result.grad_norm = step.grad_norm;
    }
  if (result.counted) result.loss /= static_cast<double>(result.counted);
  return result;
}

void add_micro_batch_metrics(Metrics& metrics, const std::string& role, const PpoTrainingOptions& ppo,
                             const Updates& updates) {
  if (ppo.max_tokens_per_microbatch > 0 && updates.counted > 0)
    metrics.values[role + "_micro_batches"] =
        static_cast<double>(updates.micro_batches) / static_cast<double>(updates.counted);
}

/// What a data-parallel rank adds to its metrics: how far the ranks' weights drifted
/// apart (0 when in step), the group size, and its share of the optimizer state.
void add_data_parallel_metrics(Metrics& metrics, const std::string& role, DataParallel& group,
                               const engine::TrainEngine& trainer) {
  std::vector<torch::Tensor> parameters;
  for (const auto& p : trainer.model()->parameters()) parameters.push_back(p);
  metrics.values[role + "_dp_divergence"] = group.divergence(parameters);
  metrics.values[role + "_dp_ranks"] = static_cast<double>(group.world());
  metrics.values[role + "_optimizer_state_mib"] = static_cast<double>(trainer.optimizer_state_bytes()) / (1 << 20);
}

/// ", data-parallel rank R of W (gloo, ZeRO stage S)" for a role's description.
std::string data_parallel_text(const DataParallel* group) {
  if (!group) return "";
  const int stage = group->zero_stage();
  return ", data-parallel rank " + std::to_string(group->rank()) + " of " + std::to_string(group->world()) + " (" +
         collectives_name(group->collectives()) + (stage > 0 ? ", ZeRO stage " + std::to_string(stage) : "") + ")";
}

Metrics skipped() { return Metrics{{{"skipped", 1.0}}}; }

std::filesystem::path rank_state_dir(const std::string& dir, const std::string& role, const DataParallel* group) {
  return std::filesystem::path(dir) / role / ("rank" + std::to_string(group ? group->rank() : 0));
}

void save_trainer_state(engine::TrainEngine& trainer, const std::filesystem::path& tokenizer_dir,
                        const std::filesystem::path& rank_dir, const nlohmann::json& extra) {
  engine::save_training_checkpoint(trainer, tokenizer_dir, rank_dir, {}, extra);
}

nlohmann::json load_trainer_state(engine::TrainEngine& trainer, const std::filesystem::path& rank_dir) {
  nlohmann::json extra;
  engine::load_training_checkpoint(trainer, rank_dir, &extra);
  return extra;
}

}  // namespace troupe::actors
