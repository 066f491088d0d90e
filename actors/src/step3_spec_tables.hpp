#pragma once
/// The step-3 settings a role spec carries, one table per options struct, side by side.
/// A line names a field's option key and the field; write_spec_fields and
/// read_spec_fields (spec_fields.hpp) use the same table to write a spec and to read it
/// back, so a new setting is one line here (plus its CLI flag). A key two structs share
/// ("dtype", "seed") is written by both and must agree.
#include <cstdint>
#include <optional>
#include <string>

#include <troupe/actors/data_parallel.hpp>
#include "ppo_training_options.hpp"
#include "remote_reward_function.hpp"
#include "step3_models.hpp"
#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/generation.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/rl/algorithm.hpp>

#include "spec_fields.hpp"

namespace troupe::actors {

/// What every step-3 role's spec carries besides its options structs.
struct RoleBasics {
  std::optional<std::string> model;  ///< Hugging Face directory; none for a reward function or endpoint
  std::string tokenizer;             ///< tokenizer directory
  std::string device = "cpu";        ///< "cuda": each rank its own device (rank_device)
  uint64_t seed = 1234;              ///< the same on every rank, so fresh weights start equal
};

/// The algorithm of the actor and the critic, with its settings.
struct AlgorithmSpec {
  std::string name;
  rl::AlgorithmOptions options;
};

/// The actor's settings that belong to no engine struct.
struct ActorSpecOptions {
  std::string unsupervised_data;        ///< the mixture corpus; empty = no mixture
  int64_t unsupervised_block = 0;       ///< tokens per mixture block: prompt and answer lengths
  int64_t prompts_per_generation = 0;   ///< prompts per generate() call; 0 = all of a batch
  int inference_tp_size = 1;            ///< actor ranks that generate tensor-parallel together
};

/// Where a reward that does not come from a model comes from.
struct RewardSource {
  std::string url;  ///< an HTTP endpoint (--reward_url); empty = none
  RemoteRewardOptions remote;
  std::string function;  ///< a registered reward function (--reward_function); empty = none
};

/// How the ranks of a role on several processes meet (Step3Runtime::join_group).
struct DataParallelSpec {
  std::string rendezvous;  ///< HOST:PORT the controller hosts
  Collectives collectives = default_collectives();
  int zero_stage = 0;  ///< >= 1: optimizer state partitioned over the ranks; 3: the model too
  int64_t reduce_bucket_size = 500'000'000;  ///< zero_stage 2: gradient elements per bucket
  int zero3_prefetch_layers = 1;  ///< zero_stage 3: layers gathered ahead of the running one
  int64_t collective_timeout_seconds = 300;
};

/// "fp32" or "bf16": how specs name a compute or an inference dtype.
inline std::string dtype_name(torch::ScalarType dtype) { return dtype == torch::kBFloat16 ? "bf16" : "fp32"; }

/// The training compute dtype (fp16 refused with the reason).
inline NamedField<torch::ScalarType> compute_dtype_field(torch::ScalarType& dtype) {
  return {dtype, dtype_name, engine::parse_compute_dtype};
}

template <class Visit>
void spec_fields(Visit&& v, RoleBasics& o) {
  v("model", o.model);
  v("tokenizer", o.tokenizer);
  v("device", o.device);
  v("seed", o.seed);
}

/// value_head is the factory's (critic, reward); device is the rank's (rank_device).
template <class Visit>
void spec_fields(Visit&& v, RoleModelOptions& o) {
  v("lora_dim", o.lora_dim);
  v("lora_module_name", o.lora_module_name);
  v("only_optimize_lora", o.only_optimize_lora);
  v("gradient_checkpointing", o.gradient_checkpointing);
  v("dropout", o.dropout);
  v("dtype", compute_dtype_field(o.compute_dtype));
}

template <class Visit>
void spec_fields(Visit&& v, engine::TrainOptions& o) {
  v("lr", o.optimizer.learning_rate);
  v("weight_decay", o.optimizer.weight_decay);
  v("lora_lr", o.optimizer.lora_learning_rate);
  v("beta1", o.optimizer.beta1);
  v("beta2", o.optimizer.beta2);
  v("eps", o.optimizer.eps);
  v("schedule", NamedField<engine::ScheduleType>{o.schedule.type, engine::schedule_name, engine::parse_schedule_type});
  v("warmup_steps", o.schedule.warmup_steps);
  v("total_steps", o.schedule.total_steps);
  v("gradient_accumulation_steps", o.gradient_accumulation_steps);
  v("max_grad_norm", o.max_grad_norm);
  v("dtype", compute_dtype_field(o.compute_dtype));
}

template <class Visit>
void spec_fields(Visit&& v, AlgorithmSpec& o) {
  v("algorithm", o.name);
  v("algo.", o.options);  // "algo.kl_ctl", ...
}

/// unsupervised: the blocks are built from ActorSpecOptions::unsupervised_data.
template <class Visit>
void spec_fields(Visit&& v, PpoTrainingOptions& o) {
  v("ppo_epochs", o.ppo_epochs);
  v("minibatch_size", o.minibatch_size);
  v("max_tokens_per_microbatch", o.max_tokens_per_microbatch);
  v("enable_ema", o.enable_ema);
  v("ema_beta", o.ema_beta);
  v("unsup_coef", o.unsup_coef);
  v("unsupervised_batch", o.unsupervised_batch);
  v("seed", o.seed);
}

/// inference_dtype: the hybrid engine's packs the weights generation reads
/// (HybridEngineOptions), so the options here leave it unset.
template <class Visit>
void spec_fields(Visit&& v, models::GenerationOptions& o) {
  v("max_new_tokens", o.max_new_tokens);
  v("do_sample", o.do_sample);
  v("temperature", o.temperature);
  v("top_k", o.top_k);
  v("top_p", o.top_p);
  v("generation_seed", o.seed);
  v("eos_token_ids", o.eos_token_ids);
  v("pad_token_id", o.pad_token_id);
}

/// log_switches: not carried; a role logs each generate()'s switch times at debug level.
template <class Visit>
void spec_fields(Visit&& v, engine::HybridEngineOptions& o) {
  v("release_inference_cache", o.release_inference_cache);
  v("inference_dtype", NamedField<torch::ScalarType>{o.inference_dtype, dtype_name, models::inference_dtype_from_name});
  v("pack_inference_weights", o.pack_inference_weights);
  v("dtype", compute_dtype_field(o.compute_dtype));
}

template <class Visit>
void spec_fields(Visit&& v, ActorSpecOptions& o) {
  v("unsupervised_data", o.unsupervised_data);
  v("unsupervised_block", o.unsupervised_block);
  v("prompts_per_generation", o.prompts_per_generation);
  v("inference_tp_size", o.inference_tp_size);
}

/// RemoteRewardOptions' retries are the client's own.
template <class Visit>
void spec_fields(Visit&& v, RewardSource& o) {
  v("reward_url", o.url);
  v("reward_timeout", o.remote.timeout_seconds);
  v("reward_function", o.function);
}

template <class Visit>
void spec_fields(Visit&& v, DataParallelSpec& o) {
  v("dp_rendezvous", o.rendezvous);
  v("dp_collectives", NamedField<Collectives>{o.collectives, collectives_name, parse_collectives});
  v("zero_stage", o.zero_stage);
  v("reduce_bucket_size", o.reduce_bucket_size);
  v("zero3_prefetch_layers", o.zero3_prefetch_layers);
  v("collective_timeout_s", o.collective_timeout_seconds);
}

}  // namespace troupe::actors
