/// Step 3's role models: the tensor work behind the policy, critic, reference and
/// reward actors.
#include <cstdio>
#include <troupe/actors/step3_roles.hpp>

#include <troupe/engine/hybrid_memory.hpp>

#include <torch/torch.h>

#include <troupe/actors/experience_batch.hpp>
#include <troupe/common/error.hpp>
#include <troupe/data/sampler.hpp>
#include <troupe/engine/checkpoint.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/rl/experience_metrics.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>

namespace troupe::actors {
namespace {

torch::Device device_of(const models::CausalLMImpl& model) { return model.parameters().front().device(); }

int64_t prompt_length_of(const TensorBatch& batch, const std::string& where) {
  return require_tensor(batch, "prompt_length", where)[0].item<int64_t>();
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

/// A data-parallel rank's step when it has no rows left: a zero loss, so its gradients
/// count zeros in the ranks' average (every rank takes the same steps: each all-reduces).
engine::MicroStep zero_loss_step(engine::TrainEngine& trainer, const std::string& role) {
  return trainer.micro_step([&](models::CausalLMImpl& model) {
    for (const auto& p : model.parameters())
      if (p.requires_grad()) return p.sum() * 0.0;
    throw Error("the " + role + " has no trainable parameter");
  });
}

/// Wires a trainer to its data-parallel group: gradients averaged before every step
/// (ZeRO stage 0 and 1) or reduced onto their owners (stage 2; 3 partitions no more
/// than 2 here), optimizer state partitioned from stage 1.
void join_data_parallel(engine::TrainEngine& trainer, const std::shared_ptr<DataParallel>& group) {
  if (!group) return;
  const int stage = std::min(group->zero_stage(), 2);
  if (stage < 2)
    trainer.set_gradient_sync([group](const std::vector<torch::Tensor>& parameters) { group->average_gradients(parameters); });
  if (stage >= 1) trainer.set_optimizer_sharding(group->optimizer_sharding(stage));
}

struct Updates {
  int64_t steps = 0;    ///< steps taken, empty ones included
  int64_t counted = 0;  ///< steps on rows of this rank
  double loss = 0;      ///< mean loss of the counted steps
  double grad_norm = 0; ///< of the last optimizer step
};

/// The PPO minibatch steps of one train() call: every minibatch of every epoch. With a
/// data-parallel `group`, as many steps per epoch as the rank with the most rows needs,
/// its rows spread evenly over them; a rank short of rows steps with none
/// (`update(nullptr)` takes a zero-loss step).
Updates ppo_updates(const std::optional<rl::Experience>& exp, const PpoTrainingOptions& ppo, DataParallel* group,
                    const std::function<engine::MicroStep(const rl::Experience*)>& update) {
  const int64_t rows = exp ? exp->batch_size() : 0;
  int64_t steps = (rows + ppo.minibatch_size - 1) / ppo.minibatch_size;
  if (group) steps = group->max(steps);
  std::vector<rl::Experience> chunks;
  if (rows > 0) chunks = exp->split(group ? (rows + steps - 1) / steps : ppo.minibatch_size);
  Updates result;
  for (int64_t epoch = 0; epoch < ppo.ppo_epochs; ++epoch)
    for (int64_t i = 0; i < steps; ++i) {
      const bool has_rows = i < static_cast<int64_t>(chunks.size());
      auto step = update(has_rows ? &chunks[static_cast<size_t>(i)] : nullptr);
      ++result.steps;
      if (has_rows) {
        result.loss += step.loss;
        ++result.counted;
      }
      if (step.optimizer_stepped) result.grad_norm = step.grad_norm;
    }
  if (result.counted) result.loss /= static_cast<double>(result.counted);
  return result;
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
  const int stage = std::min(group->zero_stage(), 2);
  return ", data-parallel rank " + std::to_string(group->rank()) + " of " + std::to_string(group->world()) + " (" +
         collectives_name(group->collectives()) + (stage > 0 ? ", ZeRO stage " + std::to_string(stage) : "") + ")";
}

Metrics skipped() { return Metrics{{{"skipped", 1.0}}}; }

}  // namespace

std::pair<std::vector<std::string>, std::vector<std::string>> decode_rollouts(const models::Tokenizer& tokenizer,
                                                                              const torch::Tensor& sequences,
                                                                              const torch::Tensor& attention_mask,
                                                                              int64_t prompt_length) {
  auto seq = sequences.to(torch::kCPU, torch::kLong).contiguous();
  auto mask = attention_mask.to(torch::kCPU, torch::kLong).contiguous();
  std::vector<std::string> prompts, answers;
  for (int64_t b = 0; b < seq.size(0); ++b) {
    std::vector<int64_t> prompt, answer;
    auto row_tensor = seq[b], mask_tensor = mask[b];
    auto row = row_tensor.accessor<int64_t, 1>();
    auto real = mask_tensor.accessor<int64_t, 1>();
    for (int64_t t = 0; t < seq.size(1); ++t)
      if (real[t]) (t < prompt_length ? prompt : answer).push_back(row[t]);
    prompts.push_back(tokenizer.decode(prompt, true));
    answers.push_back(tokenizer.decode(answer, true));
  }
  return {prompts, answers};
}

// --- policy --------------------------------------------------------------------------

PolicyRole::PolicyRole(std::shared_ptr<engine::HybridEngine> hybrid, engine::TrainOptions train,
                       models::GenerationOptions generation, std::shared_ptr<const rl::Algorithm> algorithm,
                       PpoTrainingOptions ppo, std::filesystem::path tokenizer_dir,
                       std::shared_ptr<DataParallel> data_parallel)
    : hybrid_(std::move(hybrid)),
      trainer_(hybrid_->model(), std::move(train)),
      generation_(std::move(generation)),
      algorithm_(std::move(algorithm)),
      ppo_(std::move(ppo)),
      tokenizer_dir_(std::move(tokenizer_dir)),
      data_parallel_(std::move(data_parallel)) {
  if (!algorithm_) throw Error("PolicyRole: no algorithm");
  join_data_parallel(trainer_, data_parallel_);
  if (ppo_.enable_ema) {
    rl::EmaOptions options;
    options.beta = ppo_.ema_beta;
    options.dtype = torch::kFloat32;
    // Only what trains: a LoRA actor's frozen base is its own average (ema.hpp).
    ema_.emplace(rl::trainable_parameters(hybrid_->model()->named_parameters()), options);
  }
}

TensorBatch PolicyRole::generate(const TensorBatch& prompts) {
  const auto device = device_of(*hybrid_->model());
  auto ids = require_tensor(prompts, "input_ids", "policy generate").to(device);
  auto mask = require_tensor(prompts, "attention_mask", "policy generate").to(device);
  const int64_t samples = algorithm_->samples_per_prompt();
  if (samples > 1) {
    ids = ids.repeat_interleave(samples, 0);
    mask = mask.repeat_interleave(samples, 0);
  }
  const int64_t rows = ids.size(0);
  const int64_t chunk = prompts_per_generation_ > 0 ? prompts_per_generation_ * samples : std::max<int64_t>(rows, 1);
  int64_t calls = (rows + chunk - 1) / chunk;
  const auto& group = hybrid_->tensor_parallel();
  if (group.world > 1) {  // a generation group generates together: as often as its busiest rank
    auto counts = torch::zeros({group.world}, torch::kLong);
    counts[group.rank] = calls;
    group.all_reduce_sum(counts);
    calls = counts.max().item<int64_t>();
  }
  std::vector<models::GenerationResult> outs;
  int64_t longest = 0;
  for (int64_t call = 0; call < calls; ++call) {
    const int64_t start = std::min(rows, call * chunk), end = std::min(rows, start + chunk);
    auto options = generation_;
    options.seed = generation_.seed + static_cast<uint64_t>(generations_++);  // new samples every call
    if (data_parallel_) options.seed += static_cast<uint64_t>(data_parallel_->rank()) << 32;  // and on every rank
    outs.push_back(hybrid_->generate(ids.slice(0, start, end), mask.slice(0, start, end), options));
    longest = std::max(longest, outs.back().sequences.size(1));
  }
  if (rows == 0) return {};  // took part in the group's generation only
  // Each generation stops when its own rows end: pad to the longest, masked out. The
  // ranks of a data-parallel actor pad to the full answer length, so their batches join.
  if (data_parallel_) longest = std::max(longest, outs.front().prompt_length + generation_.max_new_tokens);
  const int64_t pad = generation_.pad_token_id.value_or(0);
  std::vector<torch::Tensor> sequences, masks;
  for (const auto& out : outs) {
    const int64_t missing = longest - out.sequences.size(1);
    sequences.push_back(torch::constant_pad_nd(out.sequences, {0, missing}, pad));
    masks.push_back(torch::constant_pad_nd(out.attention_mask, {0, missing}, 0));
  }
  auto all = torch::cat(sequences);
  auto all_mask = torch::cat(masks);
  return {{"sequences", all},
          {"attention_mask", all_mask},
          {"prompt_length", torch::full({rows}, outs.front().prompt_length, torch::kLong)}};
}

TensorBatch PolicyRole::score(const TensorBatch& batch) {
  const auto device = device_of(*hybrid_->model());
  return {{"logprobs", hybrid_->score_logprobs(require_tensor(batch, "sequences", "policy score").to(device),
                                               require_tensor(batch, "attention_mask", "policy score").to(device))}};
}

double PolicyRole::mixture_step(int64_t step) {
  data::SamplerOptions sampler;
  sampler.seed = ppo_.seed;
  sampler.epoch = step;
  if (data_parallel_) {  // each rank its own blocks, as DistributedSampler deals them
    sampler.rank = data_parallel_->rank();
    sampler.world_size = data_parallel_->world();
  }
  auto batches = data::distributed_batches(ppo_.unsupervised->size(), ppo_.unsupervised_batch, sampler);
  auto batch = data::make_unsupervised_batch(*ppo_.unsupervised, batches.front());
  const auto device = device_of(*hybrid_->model());
  auto result = trainer_.micro_step([&](models::CausalLMImpl& model) {
    auto logits = model.forward(batch.input_ids.to(device), batch.attention_mask.to(device));
    return ppo_.unsup_coef * engine::language_model_loss(logits, batch.labels.to(device));
  });
  return result.loss / ppo_.unsup_coef;
}

engine::MicroStep PolicyRole::policy_step(const rl::Experience* minibatch, int64_t step) {
  auto result = !minibatch ? zero_loss_step(trainer_, "actor") : trainer_.micro_step([&](models::CausalLMImpl& model) {
    auto logprobs = engine::sequence_logprobs(model, minibatch->sequences, minibatch->attention_mask);
    // How far the policy has moved from the one that sampled (TRL's approxkl); the
    // first minibatch's is 0 unless rollout and training score tokens differently.
    const double approx_kl = rl::approx_kl(logprobs.detach(), *minibatch);
    approx_kl_total_ += approx_kl;
    if (updates_++ == 0) first_approx_kl_ = approx_kl;
    return algorithm_->policy_loss(logprobs, *minibatch);
  });
  // Mixture training: a pretraining-loss step after each PPO step (DeepSpeed-Chat's order).
  if (ppo_.unsupervised && ppo_.unsup_coef > 0) {
    unsup_total_ += mixture_step(step * 1000 + unsup_steps_);
    ++unsup_steps_;
  }
  return result;
}

Metrics PolicyRole::train(const std::vector<TensorBatch>& batches, int64_t step) {
  auto exp = training_experience(batches);
  if (!exp && !data_parallel_) return skipped();
  if (exp) *exp = exp->to(device_of(*hybrid_->model()));
  unsup_total_ = approx_kl_total_ = first_approx_kl_ = 0;
  unsup_steps_ = updates_ = 0;
  Metrics metrics;
  Updates updates;
  hybrid_->run_training([&](models::CausalLMImpl&) {
    updates = ppo_updates(exp, ppo_, data_parallel_.get(),
                          [&](const rl::Experience* minibatch) { return policy_step(minibatch, step); });
    if (ema_ && updates.steps > 0) ema_->update(hybrid_->model()->named_parameters());
  });
  if (updates.steps == 0) return skipped();
  if (updates.counted) {
    metrics.values["actor_loss"] = updates.loss;
    metrics.values["actor_approx_kl"] = approx_kl_total_ / static_cast<double>(std::max<int64_t>(updates_, 1));
    metrics.values["actor_approx_kl_first"] = first_approx_kl_;
  }
  metrics.values["actor_grad_norm"] = updates.grad_norm;
  if (unsup_steps_) metrics.values["unsup_loss"] = unsup_total_ / static_cast<double>(unsup_steps_);
  metrics.values["actor_lr"] = trainer_.learning_rate();
  if (data_parallel_) add_data_parallel_metrics(metrics, "actor", *data_parallel_, trainer_);
  return metrics;
}

void PolicyRole::save(const std::string& path) {
  if (data_parallel_ && data_parallel_->rank() != 0) return;  // the ranks hold the same weights
  hybrid_->run_training([&](models::CausalLMImpl& model) {
    engine::save_model_dir(model, tokenizer_dir_, path);
    if (!ema_) return;
    // The EMA model is the actor with the averages in its parameters: swap them in for
    // the save and the trained weights back after. Only the averaged tensors move (a
    // LoRA actor's adapters); the frozen base is saved as it is.
    torch::NoGradGuard no_grad;
    auto parameters = model.named_parameters();
    std::vector<std::pair<torch::Tensor, torch::Tensor>> trained;  // (live parameter, its trained value)
    for (const auto& item : ema_->averages()) {
      const auto& live = parameters[item.key()];
      trained.emplace_back(live, live.detach().clone());
    }
    auto restore = [&] {
      for (auto& [live, value] : trained) live.copy_(value);
    };
    ema_->copy_to(parameters);
    try {
      engine::save_model_dir(model, tokenizer_dir_, path + "_ema");
    } catch (...) {
      restore();
      throw;
    }
    restore();
  });
}

void PolicyRole::load(const std::string& path) {
  hybrid_->run_training([&](models::CausalLMImpl& model) {
    models::load_weights(model, models::read_checkpoint(path), path);
  });
}

std::string PolicyRole::describe() const {
  const auto& config = hybrid_->model()->config();
  return std::string(models::family_name(config.family)) + " " + std::to_string(config.num_layers) + " layers, " +
         algorithm_->name() + (ema_ ? ", EMA" : "") + (ppo_.unsupervised ? ", mixture" : "") +
         data_parallel_text(data_parallel_.get()) +
         (generates_in_group() ? ", generating tensor-parallel as rank " + std::to_string(hybrid_->tensor_parallel().rank) +
                                     " of " + std::to_string(hybrid_->tensor_parallel().world)
                               : "");
}

// --- critic --------------------------------------------------------------------------

CriticRole::CriticRole(models::CausalLM critic, engine::TrainOptions train, std::shared_ptr<const rl::Algorithm> algorithm,
                       PpoTrainingOptions ppo, std::filesystem::path tokenizer_dir,
                       std::shared_ptr<DataParallel> data_parallel)
    : trainer_(std::move(critic), std::move(train)),
      algorithm_(std::move(algorithm)),
      ppo_(std::move(ppo)),
      tokenizer_dir_(std::move(tokenizer_dir)),
      data_parallel_(std::move(data_parallel)) {
  if (!trainer_.model()->has_value_head()) throw Error("the critic model has no value head (v_head)");
  join_data_parallel(trainer_, data_parallel_);
}

TensorBatch CriticRole::generate(const TensorBatch&) { throw Error("the critic does not generate"); }

TensorBatch CriticRole::score(const TensorBatch& batch) {
  auto& model = *trainer_.model();
  const auto device = device_of(model);
  torch::Tensor values;
  trainer_.evaluate([&](models::CausalLMImpl& m) {
    values = engine::sequence_values(m, require_tensor(batch, "sequences", "critic score").to(device),
                                     require_tensor(batch, "attention_mask", "critic score").to(device))
                 .to(torch::kFloat32);
  });
  return {{"values", values}};
}

engine::MicroStep CriticRole::value_step(const rl::Experience* minibatch) {
  if (!minibatch) return zero_loss_step(trainer_, "critic");
  return trainer_.micro_step([&](models::CausalLMImpl& model) {
    auto values = engine::sequence_values(model, minibatch->sequences, minibatch->attention_mask);
    return algorithm_->value_loss(values.to(torch::kFloat32), *minibatch);
  });
}

Metrics CriticRole::train(const std::vector<TensorBatch>& batches, int64_t) {
  auto exp = training_experience(batches);
  if (exp) *exp = exp->to(device_of(*trainer_.model()));
  auto updates = ppo_updates(exp, ppo_, data_parallel_.get(), [&](const rl::Experience* minibatch) { return value_step(minibatch); });
  if (updates.steps == 0) return skipped();
  Metrics metrics{{{"critic_grad_norm", updates.grad_norm}, {"critic_lr", trainer_.learning_rate()}}};
  if (updates.counted) metrics.values["critic_loss"] = updates.loss;
  if (data_parallel_) add_data_parallel_metrics(metrics, "critic", *data_parallel_, trainer_);
  return metrics;
}

void CriticRole::save(const std::string& path) {
  if (data_parallel_ && data_parallel_->rank() != 0) return;  // the ranks hold the same weights
  engine::save_model_dir(*trainer_.model(), tokenizer_dir_, path);
}

void CriticRole::load(const std::string& path) {
  models::load_weights(*trainer_.model(), models::read_checkpoint(path), path);
}

std::string CriticRole::describe() const {
  const auto& config = trainer_.model()->config();
  return std::string(models::family_name(config.family)) + " critic " + std::to_string(config.num_layers) + " layers" +
         data_parallel_text(data_parallel_.get());
}

TensorBatch NoCriticRole::generate(const TensorBatch&) { throw Error("the critic does not generate"); }

TensorBatch NoCriticRole::score(const TensorBatch& batch) {
  const auto& sequences = require_tensor(batch, "sequences", "critic score");
  return {{"values", torch::zeros({sequences.size(0), sequences.size(1) - 1}, torch::kFloat32)}};
}

Metrics NoCriticRole::train(const std::vector<TensorBatch>&, int64_t) { return {}; }

// --- reference -----------------------------------------------------------------------

ReferenceRole::ReferenceRole(std::shared_ptr<engine::ReferencePolicy> reference) : reference_(std::move(reference)) {
  if (!reference_) throw Error("ReferenceRole: no reference policy");
}

TensorBatch ReferenceRole::generate(const TensorBatch&) { throw Error("the reference model does not generate"); }

TensorBatch ReferenceRole::score(const TensorBatch& batch) {
  const auto device = device_of(*reference_->model());
  return {{"ref_logprobs", reference_->logprobs(require_tensor(batch, "sequences", "reference score").to(device),
                                                require_tensor(batch, "attention_mask", "reference score").to(device))}};
}

Metrics ReferenceRole::train(const std::vector<TensorBatch>&, int64_t) { return {}; }

std::string ReferenceRole::describe() const { return "reference: " + reference_->memory_summary(); }

// --- reward --------------------------------------------------------------------------

RewardRole::RewardRole(models::CausalLM reward_model, std::shared_ptr<DataParallel> partition_over)
    : model_(std::move(reward_model)), name_("reward model") {
  if (!model_ || !model_->has_value_head()) throw Error("the reward model has no value head (v_head)");
  model_->eval();
  for (auto& p : model_->parameters()) p.set_requires_grad(false);
  if (partition_over && partition_over->world() > 1)
    partition_ = std::make_unique<FrozenPartition>(model_, std::move(partition_over));
}

RewardRole::RewardRole(std::shared_ptr<rl::RewardFunction> function, std::shared_ptr<const models::Tokenizer> tokenizer,
                       std::string name)
    : function_(std::move(function)), tokenizer_(std::move(tokenizer)), name_(std::move(name)) {
  if (!function_ || !tokenizer_) throw Error("RewardRole: a reward function needs the function and a tokenizer");
}

TensorBatch RewardRole::generate(const TensorBatch&) { throw Error("the reward model does not generate"); }

TensorBatch RewardRole::score(const TensorBatch& batch) {
  const auto& sequences = require_tensor(batch, "sequences", "reward score");
  const auto& mask = require_tensor(batch, "attention_mask", "reward score");
  if (partition_ && sequences.size(0) == 0) {  // no rows here: a one-token pass joins the layers' gathers
    torch::NoGradGuard no_grad;
    model_->hidden_states({torch::zeros({1, 1}, torch::TensorOptions().dtype(torch::kLong).device(device_of(*model_)))});
    return {};
  }
  const int64_t prompt_length = prompt_length_of(batch, "reward score");
  if (function_) {
    auto [prompts, answers] = decode_rollouts(*tokenizer_, sequences, mask, prompt_length);
    return {{"reward_score", function_->score_batch(prompts, answers)}};
  }
  torch::NoGradGuard no_grad;
  const auto device = device_of(*model_);
  return {{"reward_score",
           engine::end_scores(*model_, sequences.to(device), mask.to(device), prompt_length).to(torch::kFloat32)}};
}

Metrics RewardRole::train(const std::vector<TensorBatch>&, int64_t) { return {}; }

std::string RewardRole::describe() const {
  if (!partition_) return "reward: " + name_;
  return "reward: " + name_ + ", ZeRO-3: layers partitioned over " + std::to_string(partition_->world()) +
         " ranks (holds " + engine::format_bytes(partition_->resident_bytes()) + " of " +
         engine::format_bytes(partition_->whole_bytes()) + " of parameters)";
}

}  // namespace troupe::actors
