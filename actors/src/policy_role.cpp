/// The actor: generation in the inference layout, PPO updates in the training layout,
/// EMA and mixture training.
#include "policy_role.hpp"

#include <chrono>
#include <mutex>

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/common/error.hpp>
#include <troupe/actors/experience_batch.hpp>
#include <troupe/data/sampler.hpp>
#include <troupe/engine/checkpoint.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/rl/experience_metrics.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>

#include "role_training.hpp"

namespace troupe::actors {

PolicyRole::PolicyRole(std::shared_ptr<engine::HybridEngine> hybrid, engine::TrainOptions train,
                       models::GenerationOptions generation, std::shared_ptr<const rl::Algorithm> algorithm,
                       PpoTrainingOptions ppo, std::filesystem::path tokenizer_dir,
                       std::shared_ptr<DataParallel> data_parallel,
                       std::shared_ptr<models::PartitionedLayers> partitioned)
    : hybrid_(std::move(hybrid)),
      trainer_(hybrid_->model(), std::move(train)),
      generation_(std::move(generation)),
      algorithm_(std::move(algorithm)),
      ppo_(std::move(ppo)),
      tokenizer_dir_(std::move(tokenizer_dir)),
      data_parallel_(std::move(data_parallel)) {
  if (!algorithm_) throw Error("PolicyRole: no algorithm");
  check_micro_batching(ppo_.max_tokens_per_microbatch, *algorithm_);
  if (data_parallel_) data_parallel_->attach(trainer_, std::move(partitioned));
  hybrid_->set_zero3(trainer_.zero3());
  if (ppo_.enable_ema) {
    rl::EmaOptions options;
    options.beta = ppo_.ema_beta;
    options.dtype = torch::kFloat32;
    ema_.emplace(ema_targets(), options);
  }
}

rl::NamedTensors PolicyRole::ema_targets() const {
  // Only what trains: a LoRA actor's frozen base is its own average (ema.hpp).
  if (const auto* zero3 = trainer_.zero3()) {
    rl::NamedTensors chunks;
    const auto& groups = zero3->master_chunks();
    for (size_t group = 0; group < groups.size(); ++group)
      for (size_t i = 0; i < groups[group].size(); ++i)
        chunks.insert("zero3_chunk." + std::to_string(group) + "." + std::to_string(i), groups[group][i]);
    return chunks;
  }
  return rl::trainable_parameters(hybrid_->model()->named_parameters());
}

namespace {

/// Under ZeRO stage 3, the actor's layers whole for one generate request: gathered once
/// on every rank (a collective, so a rank without prompts joins too), under the model's
/// lock, and released under it, so that scoring on another thread never sees them change.
/// A tensor-parallel actor holds nothing here: each generate() reshards its slices.
class WholeForGeneration {
 public:
  WholeForGeneration(engine::HybridEngine& hybrid, double& seconds, int64_t& bytes) : hybrid_(hybrid) {
    auto* zero3 = hybrid.zero3();
    if (!zero3 || hybrid.tensor_parallel().world > 1) return;
    std::lock_guard<std::mutex> lock(*hybrid.model_mutex());
    const auto start = std::chrono::steady_clock::now();
    const int64_t received = zero3->received_bytes();
    whole_.emplace(zero3->gather_full_parameters());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    bytes += zero3->received_bytes() - received;
  }
  ~WholeForGeneration() {
    if (!whole_) return;
    std::lock_guard<std::mutex> lock(*hybrid_.model_mutex());
    whole_.reset();
  }
  WholeForGeneration(const WholeForGeneration&) = delete;
  WholeForGeneration& operator=(const WholeForGeneration&) = delete;

 private:
  engine::HybridEngine& hybrid_;
  std::optional<engine::Zero3Partition::FullParameters> whole_;
};

}  // namespace

TensorBatch PolicyRole::generate(const TensorBatch& prompts) {
  WholeForGeneration whole(*hybrid_, reshard_seconds_, reshard_bytes_);
  const auto device = device_of(*hybrid_->model());
  const auto prompt_ids = require_tensor(prompts, keys::input_ids, "policy generate").to(device);      // (B0, T0)
  const auto prompt_mask = require_tensor(prompts, keys::attention_mask, "policy generate").to(device);  // (B0, T0)
  const int64_t samples = algorithm_->samples_per_prompt();
  auto ids = samples > 1 ? prompt_ids.repeat_interleave(samples, 0) : prompt_ids;     // (B, T0), B = B0 * samples
  auto mask = samples > 1 ? prompt_mask.repeat_interleave(samples, 0) : prompt_mask;  // (B, T0)
  const int64_t rows = ids.size(0);
  std::optional<std::pair<bool, uint64_t>> sampling;  // (do_sample, seed) the batch asks for
  if (prompts.count(keys::do_sample) && rows > 0)
    sampling.emplace(require_tensor(prompts, keys::do_sample, "policy generate")[0].item<int64_t>() != 0,
                     static_cast<uint64_t>(require_tensor(prompts, keys::generation_seed, "policy generate")[0].item<int64_t>()));
  // ReMax's baseline: each prompt's greedy answer, for the rollouts only (an evaluation's
  // batch brings its own sampling and needs none).
  const bool greedy_baseline = algorithm_->needs_greedy_baseline() && !prompts.count(keys::do_sample);

  // Generates `call_ids` in calls of `chunk` rows, the options of call c from options_of(c).
  const auto& group = hybrid_->tensor_parallel();
  auto generate_in_calls = [&](const torch::Tensor& call_ids, const torch::Tensor& call_mask, int64_t chunk,
                               auto&& options_of) {
    const int64_t call_rows = call_ids.size(0);
    int64_t calls = (call_rows + chunk - 1) / chunk;
    if (group.world > 1) {  // a generation group generates together: as often as its busiest rank
      auto counts = torch::zeros({group.world}, torch::kLong);
      counts[group.rank] = calls;
      group.all_reduce_sum(counts);
      calls = counts.max().item<int64_t>();
    }
    std::vector<models::GenerationResult> outs;
    for (int64_t call = 0; call < calls; ++call) {
      const int64_t start = std::min(call_rows, call * chunk), end = std::min(call_rows, start + chunk);
      auto options = options_of(call);
      if (data_parallel_) options.seed += static_cast<uint64_t>(data_parallel_->rank()) << 32;  // and on every rank
      outs.push_back(hybrid_->generate(call_ids.slice(0, start, end), call_mask.slice(0, start, end), options));
      reshard_seconds_ += hybrid_->last_timings().reshard_seconds;
      reshard_bytes_ += hybrid_->last_timings().reshard_bytes;
    }
    return outs;
  };
  const int64_t chunk = prompts_per_generation_ > 0 ? prompts_per_generation_ * samples : std::max<int64_t>(rows, 1);
  auto outs = generate_in_calls(ids, mask, chunk, [&](int64_t call) {
    auto options = generation_;
    if (sampling) {  // the batch's own (an evaluation's): the rollouts' counter stays, so
                     // a rollout copy that never evaluates draws the same seeds as the actor
      options.do_sample = sampling->first;
      options.seed = sampling->second + static_cast<uint64_t>(call);
    } else {
      options.seed = generation_.seed + static_cast<uint64_t>(generations_++);  // new samples every call
    }
    return options;
  });
  std::vector<models::GenerationResult> greedy_outs;
  if (greedy_baseline) {
    const int64_t prompt_rows = prompt_ids.size(0);
    const int64_t greedy_chunk = prompts_per_generation_ > 0 ? prompts_per_generation_ : std::max<int64_t>(prompt_rows, 1);
    greedy_outs = generate_in_calls(prompt_ids, prompt_mask, greedy_chunk, [&](int64_t) {
      auto options = generation_;
      options.do_sample = false;
      return options;
    });
  }
  if (rows == 0) return {};  // took part in the group's generation only

  // Each generation stops when its own rows end: pad to the longest, masked out. The
  // ranks of a data-parallel actor pad to the full answer length, so their batches join.
  int64_t longest = 0;
  for (const auto* list : {&outs, &greedy_outs})
    for (const auto& out : *list) longest = std::max(longest, out.sequences.size(1));
  if (data_parallel_) longest = std::max(longest, outs.front().prompt_length + generation_.max_new_tokens);
  const int64_t pad = generation_.pad_token_id.value_or(0);
  auto padded = [&](const std::vector<models::GenerationResult>& list) {
    std::vector<torch::Tensor> sequences, masks;
    for (const auto& out : list) {
      const int64_t missing = longest - out.sequences.size(1);
      sequences.push_back(torch::constant_pad_nd(out.sequences, {0, missing}, pad));
      masks.push_back(torch::constant_pad_nd(out.attention_mask, {0, missing}, 0));
    }
    return std::make_pair(torch::cat(sequences), torch::cat(masks));  // (rows, longest) each
  };
  auto [all, all_mask] = padded(outs);  // (B, T)
  TensorBatch batch{{keys::sequences, all},
                    {keys::attention_mask, all_mask},
                    {keys::prompt_length, torch::full({rows}, outs.front().prompt_length, torch::kLong)}};
  if (greedy_baseline) {  // row b holds the greedy answer to row b's prompt
    auto [greedy, greedy_mask] = padded(greedy_outs);  // (B0, T)
    batch[keys::greedy_sequences] = samples > 1 ? greedy.repeat_interleave(samples, 0) : greedy;                  // (B, T)
    batch[keys::greedy_attention_mask] = samples > 1 ? greedy_mask.repeat_interleave(samples, 0) : greedy_mask;  // (B, T)
  }
  return batch;
}

TensorBatch PolicyRole::score(const TensorBatch& batch) {
  const auto device = device_of(*hybrid_->model());
  return {{keys::logprobs, hybrid_->score_logprobs(require_tensor(batch, keys::sequences, "policy score").to(device),
                                               require_tensor(batch, keys::attention_mask, "policy score").to(device),
                                               answer_scoring(batch))}};
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

MinibatchStep PolicyRole::policy_step(const rl::Experience* minibatch, int64_t step) {
  double approx_kl = 0;  // the micro-batches' shares add up to the minibatch's
  auto result = minibatch_step(
      trainer_, minibatch, ppo_.max_tokens_per_microbatch, data_parallel_.get(), "actor",
      [&](models::CausalLMImpl& model, const rl::Experience& rows) {
        engine::ScoringOptions answer_only;  // PPO reads the answer's columns alone
        answer_only.first_position = rows.start();
        auto logprobs = engine::sequence_logprobs(model, rows.sequences, rows.attention_mask, answer_only);
        approx_kl += rl::approx_kl(logprobs.detach(), rows);
        return algorithm_->policy_loss(logprobs, rows);
      });
  if (minibatch) {
    // How far the policy has moved from the one that sampled (TRL's approxkl); the
    // first minibatch's is 0 unless rollout and training score tokens differently.
    approx_kl_total_ += approx_kl;
    if (updates_++ == 0) first_approx_kl_ = approx_kl;
  }
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
    if (ema_ && updates.steps > 0) ema_->update(ema_targets());
  });
  if (updates.steps == 0) return skipped();
  if (updates.counted) {
    metrics.values["actor_loss"] = updates.loss;
    metrics.values["actor_approx_kl"] = approx_kl_total_ / static_cast<double>(std::max<int64_t>(updates_, 1));
    metrics.values["actor_approx_kl_first"] = first_approx_kl_;
  }
  metrics.values["actor_grad_norm"] = updates.grad_norm;
  add_micro_batch_metrics(metrics, "actor", ppo_, updates);
  if (unsup_steps_) metrics.values["unsup_loss"] = unsup_total_ / static_cast<double>(unsup_steps_);
  metrics.values["actor_lr"] = trainer_.learning_rate();
  if (data_parallel_) add_data_parallel_metrics(metrics, "actor", *data_parallel_, trainer_);
  add_layout_metrics(metrics, "actor", data_parallel_.get(), trainer_);
  metrics.values["actor_reshard_seconds"] = reshard_seconds_;
  metrics.values["actor_reshard_mib"] = static_cast<double>(reshard_bytes_) / (1 << 20);
  reshard_seconds_ = 0;
  reshard_bytes_ = 0;
  return metrics;
}

void PolicyRole::save_current(const std::string& path) {
  save_whole(trainer_, data_parallel_.get(), [&] { engine::save_model_dir(*hybrid_->model(), tokenizer_dir_, path); });
}

void PolicyRole::save(const std::string& path) {
  // Without ZeRO stage 3 the ranks hold the same weights: rank 0 saves them.
  if (data_parallel_ && data_parallel_->rank() != 0 && !trainer_.zero3()) return;
  hybrid_->run_training([&](models::CausalLMImpl&) {
    save_current(path);
    if (!ema_) return;
    // The EMA model is the actor with the averages in place of what they average (its
    // trainable parameters, or this rank's chunks of them): swap them in for the save
    // and the trained values back after. A LoRA actor's frozen base is saved as it is.
    torch::NoGradGuard no_grad;
    auto targets = ema_targets();
    std::vector<std::pair<torch::Tensor, torch::Tensor>> trained;  // (live tensor, its trained value)
    for (const auto& item : ema_->averages()) {
      const auto& live = targets[item.key()];
      trained.emplace_back(live, live.detach().clone());
    }
    auto* zero3 = trainer_.zero3();
    auto restore = [&] {
      for (auto& [live, value] : trained) live.copy_(value);
      if (zero3) zero3->gather_kept_parameters();
    };
    ema_->copy_to(targets);
    // The kept-whole parameters read their chunks again (every rank: an all-gather).
    if (zero3) zero3->gather_kept_parameters();
    try {
      save_current(path + "_ema");
    } catch (...) {
      restore();
      throw;
    }
    restore();
  });
}

void PolicyRole::load(const std::string& path) {
  hybrid_->run_training([&](models::CausalLMImpl&) { load_whole(trainer_, path); });
}

void PolicyRole::save_state(const std::string& dir) {
  const auto rank_dir = rank_state_dir(dir, "actor", data_parallel_.get());
  hybrid_->run_training([&](models::CausalLMImpl&) {
    save_trainer_state(trainer_, tokenizer_dir_, rank_dir, {{"generations", generations_}});
    if (!ema_) return;
    torch::serialize::OutputArchive archive;
    for (const auto& item : ema_->averages()) archive.write(item.key(), item.value());
    archive.write("ema_updates", torch::tensor(ema_->updates(), torch::kLong));
    archive.save_to((rank_dir / "ema.pt").string());
  });
}

void PolicyRole::load_state(const std::string& dir) {
  const auto rank_dir = rank_state_dir(dir, "actor", data_parallel_.get());
  hybrid_->run_training([&](models::CausalLMImpl&) {
    const auto extra = load_trainer_state(trainer_, rank_dir);
    generations_ = extra.at("generations").get<int64_t>();
    if (!ema_) return;
    const auto path = rank_dir / "ema.pt";
    if (!std::filesystem::exists(path)) throw Error(path.string() + ": missing (was the run saved without --enable_ema?)");
    torch::serialize::InputArchive archive;
    archive.load_from(path.string());
    rl::NamedTensors saved;
    for (const auto& item : ema_->averages()) {
      torch::Tensor value;
      if (!archive.try_read(item.key(), value)) throw Error(path.string() + ": no average for " + item.key());
      saved.insert(item.key(), value);
    }
    torch::Tensor updates;
    archive.read("ema_updates", updates);
    ema_->restore(saved, updates.item<int64_t>());
  });
}

std::string PolicyRole::describe() const {
  const auto& config = hybrid_->model()->config();
  return std::string(models::family_name(config.family)) + " " + std::to_string(config.num_layers) + " layers, " +
         algorithm_->name() + (ema_ ? ", EMA" : "") + (ppo_.unsupervised ? ", mixture" : "") +
         data_parallel_text(data_parallel_.get()) +
         (hybrid_->tensor_parallel().world > 1 ? ", generating tensor-parallel as rank " + std::to_string(hybrid_->tensor_parallel().rank) +
                                     " of " + std::to_string(hybrid_->tensor_parallel().world)
                               : "");
}

}  // namespace troupe::actors
