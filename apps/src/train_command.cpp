/// `troupe train`: steps 1, 2 and 3 of the InstructGPT recipe with DeepSpeed-Chat's
/// flag names (underscores or dashes), DPO in place of steps 2 and 3, or all three on
/// the bundled demo task.
#include <iostream>
#include <limits>
#include <memory>

#include <troupe/common/error.hpp>

#include "commands.hpp"
#include "train_args.hpp"

namespace troupe::apps {
namespace {

/// "--max_seq_len" and its dashed spelling "--max-seq-len".
std::string names(const std::string& flag) {
  std::string dashed = flag;
  for (char& c : dashed)
    if (c == '_') c = '-';
  return dashed == flag ? "--" + flag : "--" + flag + ",--" + dashed;
}

/// Adds flags, with both spellings, to the train command or to one of its option groups.
struct FlagAdder {
  CLI::App* group;

  template <typename T>
  CLI::Option* opt(const std::string& flag, T& into, const std::string& help) const {
    return group->add_option(names(flag), into, help)->capture_default_str();
  }
  CLI::Option* flag(const std::string& flag, bool& into, const std::string& help) const {
    return group->add_flag(names(flag), into, help);
  }
  /// A number that is unset unless given.
  template <typename T>
  CLI::Option* optional_number(const std::string& flag, std::optional<T>& into, const std::string& help) const {
    return group->add_option_function<T>(names(flag), [&into](const T& value) { into = value; }, help);
  }
};

/// The option groups of flags that apply to some steps only; the rest are the command's.
struct StepFlags {
  CLI::App* steps12;  ///< steps 1 and 2 (and DPO, which trains as they do)
  CLI::App* dpo;
  CLI::App* step3;
};

/// The first of `group`'s flags given (on the command line or in --config); empty if none.
std::string first_given(const CLI::App& group) {
  for (const auto* option : group.get_options())  // CLI11 gives each group a --help of its own: not a flag
    if (option->count() > 0 && option != group.get_help_ptr() && option != group.get_help_all_ptr())
      return option->get_name();
  return "";
}

/// "1", "2", "3" as themselves and "dpo" as kDpoStep.
std::string parse_step(const std::string& value) {
  if (value == "1" || value == "2" || value == "3") return value;
  if (value == "dpo") return std::to_string(kDpoStep);
  throw CLI::ValidationError("\"" + value + "\": expected 1, 2, 3 or dpo");  // CLI11 names the flag
}

std::string step_label(int step) { return step == kDpoStep ? "dpo" : std::to_string(step); }

/// A flag of the other steps is an error that names it, rather than silently ignored.
void check_flags_for_step(const CLI::App& cmd, const StepFlags& groups, int step) {
  if (step == 0) {  // the demo: DPO's flags only go to its DPO run
    if (const auto flag = first_given(*groups.dpo); !flag.empty() && cmd.count("--demo_dpo") == 0)
      throw Error(flag + " applies to --step dpo, or to the demo run with --demo_dpo");
    return;
  }
  for (const char* demo_only : {"--demo_dpo", "--demo_algos"})
    if (cmd.count(demo_only) > 0) throw Error(std::string(demo_only) + " belongs to the demo run (troupe train without --step)");
  auto refuse = [&](const CLI::App& group, const std::string& whose) {
    if (const auto flag = first_given(group); !flag.empty())
      throw Error(flag + " does not apply to --step " + step_label(step) + " (it is a " + whose + " flag)");
  };
  refuse(step == 3 ? *groups.steps12 : *groups.step3, step == 3 ? "step 1/2" : "step 3");
  if (step != kDpoStep) refuse(*groups.dpo, "--step dpo");
}

/// Step 3's flags about worker processes, refused where no worker process runs rather
/// than ignored.
void check_worker_flags(const CLI::App& cmd, const TrainArgs& args) {
  if (args.step == 3 && args.listen.empty() && cmd.count("--rejoin_timeout") > 0)
    throw Error("--rejoin_timeout needs --listen: a run without it starts its worker processes itself");
  if (args.step != 3 || !args.topology.empty()) return;
  for (const char* flag : {"--heartbeat_timeout", "--max_restarts"})
    if (cmd.count(flag) > 0)
      throw Error(std::string(flag) + " needs --topology: it acts on worker processes, and without a topology every "
                                      "role runs in this process");
}

/// A ZeRO setting of one stage given with another is refused rather than ignored.
void check_zero_stage_flags(const CLI::App& cmd, const TrainArgs& args) {
  for (const auto& [flag, stage] : {std::pair<const char*, int64_t>{"--reduce_bucket_size", 2}, {"--zero3_prefetch_layers", 3}})
    if (cmd.count(flag) > 0 && args.zero_stage != stage)
      throw Error(std::string(flag) + " applies to --zero_stage " + std::to_string(stage) + ", and this run has --zero_stage " +
                  std::to_string(args.zero_stage));
}

void run_train(const CLI::App& cmd, const StepFlags& groups, TrainArgs& args) {
  check_flags_for_step(cmd, groups, args.step);
  check_worker_flags(cmd, args);
  check_zero_stage_flags(cmd, args);
  if (cmd.count("--num_warmup_steps") > 0) args.step3_num_warmup_steps = args.num_warmup_steps;
  switch (args.step) {
    case 0: run_demo_pipeline(args); break;
    case 1:
    case 2: run_supervised_step(args); break;
    case 3: run_ppo_step(args); break;
    case kDpoStep: run_supervised_step(args); break;
    default: throw Error("--step " + std::to_string(args.step) + ": expected 1, 2, 3 or dpo");
  }
}

}  // namespace

Command add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand(
      "train",
      "Train with the InstructGPT recipe: --step 1 (supervised fine-tuning), 2 (reward model), 3 (PPO), or dpo "
      "(DPO on step 2's pairs instead of steps 2 and 3); without --step, all three on the bundled demo task. "
      "Flags follow DeepSpeed-Chat; `--config FILE` reads them from a JSON or KEY = VALUE file.");
  auto& a = *args;
  // A flag of a group given with another step is refused by name (check_flags_for_step).
  const FlagAdder shared{cmd};
  const FlagAdder steps12{cmd->add_option_group("Steps 1-2", "Flags of --step 1 and 2 (and of --step dpo)")};
  const FlagAdder dpo{cmd->add_option_group("DPO", "Flags of --step dpo (and of the demo run with --demo_dpo)")};
  const FlagAdder step3{cmd->add_option_group("Step 3", "Flags of --step 3 (PPO and the other RL algorithms)")};
  const StepFlags groups{steps12.group, dpo.group, step3.group};
  const auto positive = CLI::Range(int64_t{1}, int64_t{1} << 40);
  const auto non_negative = CLI::Range(int64_t{0}, int64_t{1} << 40);
  const auto non_negative_real = CLI::Range(0.0, 1e300);

  cmd->add_option("--step", a.step, "1, 2, 3 or dpo; omit to run all three on the demo task")
      ->transform(parse_step)
      ->type_name("1|2|3|dpo");
  shared.opt("output_dir", a.output_dir, "Where the model, checkpoints, metrics.jsonl and tensorboard/ go");
  shared.opt("seed", a.seed, "Random seed (data order, initialisation, sampling)");
  shared.opt("device", a.device, "cpu, cuda or cuda:N");
  shared.opt("dtype", a.dtype, "fp32, or bf16 (fp32 master weights, bf16 compute)");
  shared.flag("resume", a.resume, "Continue from <output_dir>/checkpoint exactly where it stopped (same flags)");
  shared.opt("max_steps", a.max_steps, "Stop after this many optimizer steps (step 3: cycles); 0 = all")->check(non_negative);
  shared.opt("eval_interval", a.eval_interval, "Evaluate every this many steps (0 = before and after only)")->check(non_negative);
  shared.opt("save_interval", a.save_interval, "Checkpoint every this many steps (step 3: cycles, and after the last; 0 = steps 1-2 at the end, step 3 never)")->check(non_negative);
  shared.opt("tokenizer", a.tokenizer, "Tokenizer directory (default: the model's; required with presets)");
  shared.opt("data_path", a.data_path, "SCHEMA=PATH datasets, blended (e.g. Dahoas/rm-static=demo_data)");
  shared.opt("sft_only_data_path", a.sft_only_data_path, "Datasets used whole, only in step 1");
  shared.opt("data_split", a.data_split, "Weights of the three steps' shares of every dataset");
  shared.opt("data_output_path", a.data_output_path, "Tokenized-data cache folder (default <output_dir>/data_cache)");
  shared.opt("num_train_epochs", a.num_train_epochs, "Epochs over the data")->check(positive);
  shared.opt("gradient_accumulation_steps", a.gradient_accumulation_steps, "Micro-batches per optimizer step")->check(positive);
  shared.opt("lr_scheduler_type", a.lr_scheduler_type, "linear, cosine, constant or constant_with_warmup");
  shared.opt("num_warmup_steps", a.num_warmup_steps, "Warmup steps (step 3 default: 100)")->check(non_negative);
  shared.opt("lora_module_name", a.lora_module_name, "LoRA goes on linear layers whose name contains this (empty = all)");
  shared.flag("only_optimize_lora", a.only_optimize_lora, "Train only the LoRA adapters");
  shared.opt("lora_learning_rate", a.lora_learning_rate, "Learning rate of the LoRA adapters")->check(non_negative_real);
  shared.opt("max_grad_norm", a.max_grad_norm, "Clip the gradient norm (0 = off)")->check(non_negative_real);
  shared.optional_number("dropout", a.dropout, "Dropout probability while training (default: the model config's)");
  shared.opt("num_padding_at_beginning", a.num_padding_at_beginning,
             "Accepted for DeepSpeed-Chat compatibility; troupe finds padding from the attention mask");
  shared.flag("offload", a.offload,
              "ZeRO-Offload of the trained models' optimizer state to host memory (a no-op on the CPU; not built for GPUs yet)");
  shared.opt("collective_timeout", a.collective_timeout,
             "Seconds a data-parallel rank waits at a rendezvous or collective before failing, naming the ranks that did not arrive")
      ->check(CLI::PositiveNumber);
  shared.flag("demo_dpo", a.demo_dpo, "Demo run only: also run DPO from step 1's model and compare its held-out gold with PPO's");
  shared.opt("demo_algos", a.demo_algos,
             "Demo run only: also run step 3 with each of these algorithms (comma-separated, e.g. grpo,rloo) from the same "
             "step-1 and step-2 models, and compare their held-out gold with PPO's")
      ->delimiter(',');

  steps12.opt("model_name_or_path", a.model_name_or_path, "A Hugging Face model directory, or preset:NAME (random weights)");
  steps12.opt("per_device_train_batch_size", a.per_device_train_batch_size, "Micro-batch size")->check(positive);
  steps12.opt("per_device_eval_batch_size", a.per_device_eval_batch_size, "Evaluation batch size")->check(positive);
  steps12.opt("max_seq_len", a.max_seq_len, "Sequence length (longer samples are cut)")->check(positive);
  steps12.opt("learning_rate", a.learning_rate, "Peak learning rate")->check(non_negative_real);
  steps12.opt("weight_decay", a.weight_decay, "AdamW weight decay")->check(non_negative_real);
  steps12.opt("eval_samples", a.eval_samples, "Evaluate on at most this many samples (0 = all)")->check(non_negative);
  steps12.opt("lora_dim", a.lora_dim, "LoRA rank (0 = off)")->check(non_negative);
  steps12.flag("gradient_checkpointing", a.gradient_checkpointing, "Recompute decoder layers in the backward pass");
  steps12.flag("packing", a.packing,
               "Pack each micro-batch's samples end to end into rows of --max_seq_len (attention kept within each "
               "sample, positions restarting) instead of padding every sample to --max_seq_len; the same loss");
  steps12.opt("num_processes", a.num_processes,
              "Data-parallel ranks, each a process of this machine started here (as `deepspeed --num_gpus`); "
              "ranks 1.. log to <output_dir>/logs/. Under a launcher that sets RANK, WORLD_SIZE, MASTER_ADDR and "
              "MASTER_PORT (torchrun, deepspeed, SLURM) each process is one rank: leave it out")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  steps12.opt("zero_stage", a.zero_stage,
              "With --num_processes > 1: ZeRO stage 0 (gradients averaged), 1 (optimizer state partitioned), "
              "2 (gradients too) or 3 (parameters too, gathered layer by layer)")
      ->check(CLI::Range(int64_t{0}, int64_t{3}));
  steps12.opt("reduce_bucket_size", a.reduce_bucket_size,
              "With --zero_stage 2: gradient elements per bucket reduced onto the ranks during the backward "
              "(DeepSpeed's reduce_bucket_size); a rank holds about one bucket of whole gradients")
      ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()));
  steps12.opt("zero3_prefetch_layers", a.zero3_prefetch_layers,
              "With --zero_stage 3: decoder layers whose all-gather starts while the current one computes "
              "(DeepSpeed's stage3_prefetch_bucket_size, in layers); 0 = gather each layer when it runs")
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));

  dpo.opt("beta", a.beta, "Strength of the implicit KL penalty to the reference model");
  dpo.opt("label_smoothing", a.label_smoothing, "Probability that a preference label is wrong, in [0, 0.5)");

  step3.opt("actor_model_name_or_path", a.actor_model_name_or_path, "The actor (step 1's output)");
  step3.opt("critic_model_name_or_path", a.critic_model_name_or_path, "The critic (step 2's output)");
  step3.opt("reward_model_name_or_path", a.reward_model_name_or_path, "The reward model (default: the critic's)");
  step3.opt("reward_function", a.reward_function, "A registered reward function instead of the reward model (e.g. demo_gold)");
  step3.opt("reward_url", a.reward_url,
            "An HTTP endpoint that scores each batch instead of the reward model: POST {\"prompts\", \"responses\", "
            "\"queries\"}, answer {\"rewards\": [...]}");
  step3.opt("reward_timeout", a.reward_timeout, "Seconds --reward_url may take to connect and to answer")
      ->check(CLI::Range(1e-3, 1e6));
  step3.opt("eval_function", a.eval_function, "A registered function grading held-out answers (e.g. demo_gold)");
  step3.opt("per_device_generation_batch_size", a.per_device_generation_batch_size, "Prompts per generation")->check(positive);
  step3.opt("per_device_training_batch_size", a.per_device_training_batch_size, "PPO minibatch size")->check(positive);
  step3.opt("generation_batches", a.generation_batches, "Generation batches per training round")->check(positive);
  step3.opt("ppo_epochs", a.ppo_epochs, "Passes over each experience batch")->check(positive);
  step3.opt("max_tokens_per_microbatch", a.max_tokens_per_microbatch,
            "Run each PPO minibatch in micro-batches of at most this many padded tokens (rows x longest row, "
            "rows grouped by length), gradients accumulated before its one optimizer step; a row longer than this "
            "is a micro-batch of its own. 0 = each minibatch in one pass")
      ->check(non_negative);
  step3.opt("max_prompt_seq_len", a.max_prompt_seq_len, "Prompt length (longer prompts are dropped)")->check(positive);
  step3.opt("max_answer_seq_len", a.max_answer_seq_len, "Tokens generated at most")->check(positive);
  step3.opt("actor_learning_rate", a.actor_learning_rate, "The actor's peak learning rate")->check(non_negative_real);
  step3.opt("critic_learning_rate", a.critic_learning_rate, "The critic's peak learning rate")->check(non_negative_real);
  step3.opt("actor_weight_decay", a.actor_weight_decay, "The actor's AdamW weight decay")->check(non_negative_real);
  step3.opt("critic_weight_decay", a.critic_weight_decay, "The critic's AdamW weight decay")->check(non_negative_real);
  step3.opt("actor_lora_dim", a.actor_lora_dim, "LoRA rank of the actor (with --only_optimize_lora the reference shares its base)")->check(non_negative);
  step3.opt("critic_lora_dim", a.critic_lora_dim, "LoRA rank of the critic")->check(non_negative);
  step3.flag("enable_ema", a.enable_ema, "Keep an EMA of the actor (0.992), saved as actor_ema/");
  step3.opt("unsupervised_dataset_name", a.unsupervised_dataset_name, "Text corpus (.txt/.jsonl) for mixture training");
  step3.opt("unsup_coef", a.unsup_coef, "Weight of the mixture LM loss")->check(non_negative_real);
  step3.flag("offload_reference_model", a.offload_reference_model, "Keep a frozen-copy reference on the CPU");
  step3.flag("release_inference_cache", a.release_inference_cache,
             "Free the packed generation weights and the KV cache after every generation");
  step3.opt("inference_dtype", a.inference_dtype, "Dtype of the actor's packed generation weights: fp32 or bf16")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  step3.opt("inference_weights", a.inference_weights,
            "What generation reads: packed (copies for the decode kernels) or training (the training weights, "
            "no copy: less memory, slower decoding)")
      ->check(CLI::IsMember({"packed", "training"}));
  step3.flag("async_rollout", a.async_rollout,
             "Generate the next cycle's rollouts with a copy of the actor while this cycle trains; the copy takes "
             "the new weights after each update, so rollouts are at most one update old (every role in this "
             "process, one actor rank)");
  step3.opt("rollout_is_truncation", a.rollout_is_truncation,
            "With --async_rollout: weight each token's policy-gradient loss by min(pi_old / pi_rollout, C) "
            "(truncated importance sampling); 0 = off")
      ->check(non_negative_real);
  step3.flag("actor_gradient_checkpointing", a.actor_gradient_checkpointing, "Recompute the actor's decoder layers in the backward pass");
  step3.flag("critic_gradient_checkpointing", a.critic_gradient_checkpointing, "Recompute the critic's decoder layers in the backward pass");
  step3.opt("algo", a.algo, "ppo, grpo, dr_grpo, rloo, reinforce++, reinforce++_baseline, remax or a registered algorithm");
  step3.opt("algo_option", a.algo_options, "KEY=VALUE settings of the algorithm");
  step3.optional_number("kl_ctl", a.kl_ctl, "KL penalty weight (0.1)");
  step3.optional_number("clip_reward_value", a.clip_reward_value, "Reward clamp (5)");
  step3.optional_number("cliprange", a.cliprange, "Actor ratio clip (0.2)");
  step3.optional_number("cliprange_value", a.cliprange_value, "Value clip (0.2)");
  step3.optional_number("gamma", a.gamma, "Discount (1.0)");
  step3.optional_number("lam", a.lam, "GAE lambda (0.95)");
  step3.opt("do_sample", a.do_sample, "Sample rollouts (false = greedy)");
  step3.opt("temperature", a.temperature, "Sampling temperature")->check(CLI::Range(1e-6, 1e6));
  step3.opt("top_k", a.top_k, "Top-k sampling (0 = off)")->check(non_negative);
  step3.opt("top_p", a.top_p, "Nucleus sampling (1 = off)")->check(CLI::Range(1e-6, 1.0));
  step3.opt("eval_prompts", a.eval_prompts, "Held-out prompts evaluated before and after")->check(non_negative);
  step3.opt("max_restarts", a.max_restarts,
            "When a worker process dies, restart the roles from the last checkpoint at most this many times (with "
            "--listen, once the workers joined again: --rejoin_timeout)")
      ->check(non_negative);
  step3.opt("rejoin_timeout", a.rejoin_timeout,
            "With --listen and --max_restarts: seconds a restarted run waits for its worker processes to join again "
            "(`troupe worker --rejoin` ones come back by themselves)")
      ->check(CLI::Range(1.0, 1e6));
  step3.opt("heartbeat_timeout", a.heartbeat_timeout,
            "With --topology: seconds a worker process may leave the controller's heartbeats unanswered once its "
            "roles are up (hung or stopped) before it counts as lost: one started here is killed and, with "
            "--max_restarts, restarted; 0 = no heartbeats")
      ->check(CLI::Range(0.0, 1e6));
  step3.opt("topology", a.topology,
            "Topology JSON saying which roles share a process (placement/examples); roles apart from the actor "
            "run in `troupe worker` processes started here. Default: all four in this process")
      ->check(CLI::ExistingFile);
  step3.opt("cluster", a.cluster,
            "With --topology: this machine's resources as a one-node cluster JSON (as for `troupe plan`). "
            "Default: detected")
      ->check(CLI::ExistingFile);
  step3.opt("listen", a.listen,
            "With --topology: wait on HOST:PORT for the worker processes to join (`troupe worker --join HOST:PORT` "
            "with TROUPE_SECRET set, here or on other machines) instead of starting them here");
  step3.opt("dp_collectives", a.dp_collectives,
            "With --topology: what carries the collectives (gradient averaging, tensor-parallel generation) of a "
            "role placed on several processes: shm (shared memory; every rank on one machine), gloo (c10d "
            "ProcessGroupGloo), ucx (troupe's ring), nccl (c10d ProcessGroupNCCL; each rank on its own GPU, "
            "`--device cuda` gives rank r cuda:r modulo the GPUs) or auto (shm when a group's ranks share a machine, "
            "else gloo when built with it, else ucx). Default: nccl with --device cuda in a CUDA build, else auto")
      ->check(CLI::IsMember({"gloo", "ucx", "nccl", "shm", "auto"}));
  step3.opt("inference_tp_size", a.inference_tp_size,
            "Tensor-parallel size of the actor's generation layout (DeepSpeed-Chat's flag): groups of this many "
            "actor ranks generate their prompts together, each with 1/size of the attention and MLP weights. Divides "
            "the actor's devices in --topology. Default: the topology's roles.actor.inference_tp_size (1)")
      ->check(positive);
  return {cmd, [cmd, groups, args] { run_train(*cmd, groups, *args); }};
}

}  // namespace troupe::apps
