#pragma once
/// `troupe train`'s settings, with DeepSpeed-Chat's flag names, and the runs of each
/// step from them (train_steps.cpp) and of all three on the demo (demo_pipeline.cpp).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <troupe/actors/step3_trainer.hpp>
#include <troupe/engine/training_loop.hpp>

namespace troupe::apps {

/// `--step dpo`: DPO on step 2's pairs, in place of steps 2 and 3.
constexpr int kDpoStep = 4;

/// "step1", "step2", "step3" or "dpo": names the phase's metrics and log lines.
std::string step_name(int step);

struct TrainArgs {
  int step = 0;  ///< 1, 2, 3 or kDpoStep; 0 = all three on the demo task
  // models
  std::string model_name_or_path;  ///< steps 1-2: a directory or preset:NAME
  std::string tokenizer;           ///< tokenizer directory (required with presets)
  std::string actor_model_name_or_path, critic_model_name_or_path, reward_model_name_or_path;
  // data
  std::vector<std::string> data_path, sft_only_data_path;
  std::string data_split = "2,4,4";
  std::string data_output_path;  ///< tokenized cache; default <output_dir>/data_cache
  std::string unsupervised_dataset_name;
  int64_t max_seq_len = 512, max_prompt_seq_len = 256, max_answer_seq_len = 256;
  // batches and epochs
  int64_t per_device_train_batch_size = 16, per_device_eval_batch_size = 16;
  int64_t per_device_generation_batch_size = 16, per_device_training_batch_size = 16;
  int64_t generation_batches = 1, ppo_epochs = 1, num_train_epochs = 1, gradient_accumulation_steps = 1;
  int64_t max_tokens_per_microbatch = 0;  ///< step 3: padded tokens per forward-backward pass (0 = off)
  int64_t max_steps = 0, eval_interval = 0, save_interval = 0, eval_samples = 0, eval_prompts = 64;
  int64_t max_restarts = 0, collective_timeout = 300;
  double rejoin_timeout = 600;  ///< step 3 with --listen: seconds to wait for workers to join a restarted run
  double heartbeat_timeout = 60;  ///< step 3: seconds a worker process may leave heartbeats unanswered
  int64_t num_processes = 1;  ///< steps 1-2: data-parallel ranks started on this machine
  int64_t zero_stage = 0;     ///< steps 1-2: DeepSpeed's ZeRO stage over those ranks
  /// Steps 1-2, ZeRO stage 2: gradient elements per bucket reduced during the backward.
  int64_t reduce_bucket_size = 500'000'000;
  /// Steps 1-2, ZeRO stage 3: decoder layers gathered ahead of the running one (0 = none).
  int64_t zero3_prefetch_layers = 1;
  // optimisation
  double learning_rate = 1e-3, weight_decay = 0.0, lora_learning_rate = 5e-4, max_grad_norm = 1.0;
  double actor_learning_rate = 9.65e-6, critic_learning_rate = 5e-6;
  double actor_weight_decay = 0.0, critic_weight_decay = 0.0;
  std::string lr_scheduler_type = "cosine";
  int64_t num_warmup_steps = 0;
  std::optional<int64_t> step3_num_warmup_steps;  ///< step 3's default is 100
  // model options
  bool packing = false;  ///< steps 1-2: samples packed end to end into rows (block-diagonal attention)
  bool gradient_checkpointing = false, actor_gradient_checkpointing = false, critic_gradient_checkpointing = false;
  std::optional<double> dropout;
  int64_t lora_dim = 0, actor_lora_dim = 0, critic_lora_dim = 0;
  std::string lora_module_name;
  bool only_optimize_lora = false;
  std::string dtype = "fp32";
  int64_t num_padding_at_beginning = 1;  ///< accepted for compatibility (troupe reads the mask)
  // DPO
  double beta = 0.1, label_smoothing = 0.0;
  bool demo_dpo = false;  ///< the demo runs DPO from step 1's model too and compares gold
  std::vector<std::string> demo_algos;  ///< the demo also runs step 3 with each of these algorithms
  // step 3
  std::string algo = "ppo";
  std::vector<std::string> algo_options;  ///< KEY=VALUE
  std::optional<double> kl_ctl, clip_reward_value, cliprange, cliprange_value, gamma, lam;
  bool enable_ema = false, release_inference_cache = false, offload_reference_model = false;
  bool offload = false;  ///< --offload (ZeRO-Offload), every step
  std::string inference_dtype = "fp32";
  std::string inference_weights = "packed";
  bool async_rollout = false;         ///< --async_rollout: generation overlapped with training
  double rollout_is_truncation = 0;   ///< --rollout_is_truncation C: truncated IS cap (0 = off)
  double unsup_coef = 27.8;
  std::string reward_function, eval_function;
  std::string reward_url;       ///< an HTTP endpoint scoring each batch instead of a reward model
  double reward_timeout = 60;   ///< seconds the endpoint may take to connect and to answer
  std::string topology;  ///< which roles share a process (placement/examples)
  std::string cluster;   ///< this machine's resources for the plan (one node)
  std::string listen;    ///< wait for external workers on HOST:PORT instead of starting them
  std::string dp_collectives;  ///< gloo, ucx, nccl, shm or auto; empty = nccl on CUDA (CUDA build), else auto
  int64_t inference_tp_size = 0;  ///< 0 = the topology's (roles.actor.inference_tp_size)
  bool do_sample = true;
  double temperature = 1.0, top_p = 1.0;
  int64_t top_k = 0;
  // run
  uint64_t seed = 1234;
  std::string output_dir;
  std::string device = "cpu";
  bool resume = false;
};

/// Step 1, 2 or DPO from `args`; writes the model into args.output_dir.
engine::PhaseResult run_supervised_step(const TrainArgs& args);
/// Step 3 from `args`; writes actor/, critic/ (and actor_ema/) into args.output_dir.
actors::Step3Result run_ppo_step(const TrainArgs& args);
/// All three steps on the bundled demo task, with a summary table and an HTML report.
void run_demo_pipeline(const TrainArgs& args);

}  // namespace troupe::apps
