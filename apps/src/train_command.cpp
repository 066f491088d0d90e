/// `troupe train`: steps 1, 2 and 3 of the InstructGPT recipe with DeepSpeed-Chat's
/// flag names (underscores or dashes), DPO in place of steps 2 and 3, or all three on
/// the bundled demo task.
#include <iostream>
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

template <typename T>
void optional_number(CLI::App* cmd, const std::string& flag, std::optional<T>& into, const std::string& help) {
  cmd->add_option_function<T>(names(flag), [&into](const T& value) { into = value; }, help);
}

const std::vector<std::string> kStep3Only = {
    "actor_model_name_or_path", "critic_model_name_or_path", "reward_model_name_or_path", "per_device_generation_batch_size",
    "per_device_training_batch_size", "generation_batches", "ppo_epochs", "max_prompt_seq_len", "max_answer_seq_len",
    "actor_learning_rate", "critic_learning_rate", "actor_weight_decay", "critic_weight_decay", "enable_ema",
    "unsupervised_dataset_name", "unsup_coef", "actor_lora_dim", "critic_lora_dim", "offload_reference_model",
    "release_inference_cache", "inference_dtype", "actor_gradient_checkpointing", "critic_gradient_checkpointing", "algo", "algo_option",
    "kl_ctl", "clip_reward_value", "cliprange", "cliprange_value", "gamma", "lam", "reward_function", "eval_function",
    "reward_url", "reward_timeout",
    "do_sample", "temperature", "top_k", "top_p", "eval_prompts", "topology", "cluster", "listen", "dp_collectives",
    "inference_tp_size", "max_restarts", "heartbeat_timeout"};
const std::vector<std::string> kStep12Only = {"model_name_or_path", "per_device_train_batch_size", "learning_rate",
                                              "weight_decay", "lora_dim", "gradient_checkpointing", "max_seq_len",
                                              "per_device_eval_batch_size", "eval_samples", "num_processes", "zero_stage",
                                              "packing"};

const std::vector<std::string> kDpoOnly = {"beta", "label_smoothing"};

/// "1", "2", "3" as themselves and "dpo" as kDpoStep.
std::string parse_step(const std::string& value) {
  if (value == "1" || value == "2" || value == "3") return value;
  if (value == "dpo") return std::to_string(kDpoStep);
  throw CLI::ValidationError("\"" + value + "\": expected 1, 2, 3 or dpo");  // CLI11 names the flag
}

std::string step_label(int step) { return step == kDpoStep ? "dpo" : std::to_string(step); }

/// A flag of the other steps is an error that names it, rather than silently ignored.
void check_flags_for_step(const CLI::App& cmd, int step) {
  if (step == 0) {  // the demo: DPO's flags only go to its DPO run
    for (const auto& flag : kDpoOnly)
      if (cmd.count("--" + flag) > 0 && cmd.count("--demo_dpo") == 0)
        throw Error("--" + flag + " applies to --step dpo, or to the demo run with --demo_dpo");
    return;
  }
  if (cmd.count("--demo_dpo") > 0) throw Error("--demo_dpo belongs to the demo run (troupe train without --step)");
  auto refuse = [&](const std::vector<std::string>& flags, const std::string& whose) {
    for (const auto& flag : flags)
      if (cmd.count("--" + flag) > 0)
        throw Error("--" + flag + " does not apply to --step " + step_label(step) + " (it is a " + whose + " flag)");
  };
  refuse(step == 3 ? kStep12Only : kStep3Only, step == 3 ? "step 1/2" : "step 3");
  if (step != kDpoStep) refuse(kDpoOnly, "--step dpo");
}

void run_train(const CLI::App& cmd, TrainArgs& args) {
  check_flags_for_step(cmd, args.step);
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
  auto opt = [&](const std::string& flag, auto& into, const std::string& help) {
    return cmd->add_option(names(flag), into, help)->capture_default_str();
  };
  auto flag = [&](const std::string& f, bool& into, const std::string& help) {
    return cmd->add_flag(names(f), into, help);
  };
  const auto positive = CLI::Range(int64_t{1}, int64_t{1} << 40);
  const auto non_negative = CLI::Range(int64_t{0}, int64_t{1} << 40);
  const auto non_negative_real = CLI::Range(0.0, 1e300);

  cmd->add_option("--step", a.step, "1, 2, 3 or dpo; omit to run all three on the demo task")
      ->transform(parse_step)
      ->type_name("1|2|3|dpo");
  opt("output_dir", a.output_dir, "Where the model, checkpoints, metrics.jsonl and tensorboard/ go");
  opt("seed", a.seed, "Random seed (data order, initialisation, sampling)");
  opt("device", a.device, "cpu, cuda or cuda:N");
  opt("dtype", a.dtype, "fp32, or bf16 (fp32 master weights, bf16 compute)");
  flag("resume", a.resume, "Continue from <output_dir>/checkpoint exactly where it stopped (same flags)");
  opt("max_steps", a.max_steps, "Stop after this many optimizer steps (step 3: cycles); 0 = all")->check(non_negative);
  opt("eval_interval", a.eval_interval, "Evaluate every this many steps (0 = before and after only)")->check(non_negative);
  opt("save_interval", a.save_interval, "Checkpoint every this many steps (step 3: cycles, and after the last; 0 = steps 1-2 at the end, step 3 never)")->check(non_negative);

  // Steps 1 and 2.
  opt("model_name_or_path", a.model_name_or_path, "Steps 1-2: a Hugging Face model directory, or preset:NAME (random weights)");
  opt("tokenizer", a.tokenizer, "Tokenizer directory (default: the model's; required with presets)");
  opt("per_device_train_batch_size", a.per_device_train_batch_size, "Steps 1-2: micro-batch size")->check(positive);
  opt("per_device_eval_batch_size", a.per_device_eval_batch_size, "Steps 1-2: evaluation batch size")->check(positive);
  opt("max_seq_len", a.max_seq_len, "Steps 1-2: sequence length (longer samples are cut)")->check(positive);
  opt("learning_rate", a.learning_rate, "Steps 1-2: peak learning rate")->check(non_negative_real);
  opt("weight_decay", a.weight_decay, "Steps 1-2: AdamW weight decay")->check(non_negative_real);
  opt("eval_samples", a.eval_samples, "Steps 1-2: evaluate on at most this many samples (0 = all)")->check(non_negative);
  opt("lora_dim", a.lora_dim, "Steps 1-2: LoRA rank (0 = off)")->check(non_negative);
  flag("gradient_checkpointing", a.gradient_checkpointing, "Steps 1-2: recompute decoder layers in the backward pass");
  flag("packing", a.packing,
       "Steps 1-2: pack each micro-batch's samples end to end into rows of --max_seq_len (attention kept within "
       "each sample, positions restarting) instead of padding every sample to --max_seq_len; the same loss");
  opt("num_processes", a.num_processes,
      "Steps 1-2: data-parallel ranks, each a process of this machine started here (as `deepspeed --num_gpus`); "
      "ranks 1.. log to <output_dir>/logs/")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  opt("zero_stage", a.zero_stage,
      "Steps 1-2 with --num_processes > 1: ZeRO stage 0 (gradients averaged), 1 (optimizer state partitioned), "
      "2 (gradients too) or 3 (parameters too, gathered layer by layer)")
      ->check(CLI::Range(int64_t{0}, int64_t{3}));

  // DPO (steps 1-2's flags apply too).
  opt("beta", a.beta, "--step dpo: strength of the implicit KL penalty to the reference model");
  opt("label_smoothing", a.label_smoothing, "--step dpo: probability that a preference label is wrong, in [0, 0.5)");
  flag("demo_dpo", a.demo_dpo, "Demo run only: also run DPO from step 1's model and compare its held-out gold with PPO's");

  // Shared.
  opt("data_path", a.data_path, "SCHEMA=PATH datasets, blended (e.g. Dahoas/rm-static=demo_data)");
  opt("sft_only_data_path", a.sft_only_data_path, "Datasets used whole, only in step 1");
  opt("data_split", a.data_split, "Weights of the three steps' shares of every dataset");
  opt("data_output_path", a.data_output_path, "Tokenized-data cache folder (default <output_dir>/data_cache)");
  opt("num_train_epochs", a.num_train_epochs, "Epochs over the data")->check(positive);
  opt("gradient_accumulation_steps", a.gradient_accumulation_steps, "Micro-batches per optimizer step")->check(positive);
  opt("lr_scheduler_type", a.lr_scheduler_type, "linear, cosine, constant or constant_with_warmup");
  opt("num_warmup_steps", a.num_warmup_steps, "Warmup steps (step 3 default: 100)")->check(non_negative);
  opt("lora_module_name", a.lora_module_name, "LoRA goes on linear layers whose name contains this (empty = all)");
  flag("only_optimize_lora", a.only_optimize_lora, "Train only the LoRA adapters");
  opt("lora_learning_rate", a.lora_learning_rate, "Learning rate of the LoRA adapters")->check(non_negative_real);
  opt("max_grad_norm", a.max_grad_norm, "Clip the gradient norm (0 = off)")->check(non_negative_real);
  optional_number(cmd, "dropout", a.dropout, "Dropout probability while training (default: the model config's)");
  opt("num_padding_at_beginning", a.num_padding_at_beginning,
      "Accepted for DeepSpeed-Chat compatibility; troupe finds padding from the attention mask");

  // Step 3.
  opt("actor_model_name_or_path", a.actor_model_name_or_path, "Step 3: the actor (step 1's output)");
  opt("critic_model_name_or_path", a.critic_model_name_or_path, "Step 3: the critic (step 2's output)");
  opt("reward_model_name_or_path", a.reward_model_name_or_path, "Step 3: the reward model (default: the critic's)");
  opt("reward_function", a.reward_function, "Step 3: a registered reward function instead of the reward model (e.g. demo_gold)");
  opt("reward_url", a.reward_url,
      "Step 3: an HTTP endpoint that scores each batch instead of the reward model: POST {\"prompts\", \"responses\", "
      "\"queries\"}, answer {\"rewards\": [...]}");
  opt("reward_timeout", a.reward_timeout, "Step 3: seconds --reward_url may take to connect and to answer")
      ->check(CLI::Range(1e-3, 1e6));
  opt("eval_function", a.eval_function, "Step 3: a registered function grading held-out answers (e.g. demo_gold)");
  opt("per_device_generation_batch_size", a.per_device_generation_batch_size, "Step 3: prompts per generation")->check(positive);
  opt("per_device_training_batch_size", a.per_device_training_batch_size, "Step 3: PPO minibatch size")->check(positive);
  opt("generation_batches", a.generation_batches, "Step 3: generation batches per training round")->check(positive);
  opt("ppo_epochs", a.ppo_epochs, "Step 3: passes over each experience batch")->check(positive);
  opt("max_prompt_seq_len", a.max_prompt_seq_len, "Step 3: prompt length (longer prompts are dropped)")->check(positive);
  opt("max_answer_seq_len", a.max_answer_seq_len, "Step 3: tokens generated at most")->check(positive);
  opt("actor_learning_rate", a.actor_learning_rate, "Step 3")->check(non_negative_real);
  opt("critic_learning_rate", a.critic_learning_rate, "Step 3")->check(non_negative_real);
  opt("actor_weight_decay", a.actor_weight_decay, "Step 3")->check(non_negative_real);
  opt("critic_weight_decay", a.critic_weight_decay, "Step 3")->check(non_negative_real);
  opt("actor_lora_dim", a.actor_lora_dim, "Step 3: LoRA rank of the actor (with --only_optimize_lora the reference shares its base)")->check(non_negative);
  opt("critic_lora_dim", a.critic_lora_dim, "Step 3: LoRA rank of the critic")->check(non_negative);
  flag("enable_ema", a.enable_ema, "Step 3: keep an EMA of the actor (0.992), saved as actor_ema/");
  opt("unsupervised_dataset_name", a.unsupervised_dataset_name, "Step 3: text corpus (.txt/.jsonl) for mixture training");
  opt("unsup_coef", a.unsup_coef, "Step 3: weight of the mixture LM loss")->check(non_negative_real);
  flag("offload_reference_model", a.offload_reference_model, "Step 3: keep a frozen-copy reference on the CPU");
  flag("offload", a.offload,
       "ZeRO-Offload of the trained models' optimizer state to host memory (a no-op on the CPU; not built for GPUs yet)");
  flag("release_inference_cache", a.release_inference_cache,
       "Step 3: free the packed generation weights and the KV cache after every generation");
  opt("inference_dtype", a.inference_dtype, "Step 3: dtype of the actor's packed generation weights: fp32 or bf16")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  flag("actor_gradient_checkpointing", a.actor_gradient_checkpointing, "Step 3");
  flag("critic_gradient_checkpointing", a.critic_gradient_checkpointing, "Step 3");
  opt("algo", a.algo, "Step 3: ppo, grpo, dr_grpo, rloo, reinforce++, reinforce++_baseline, remax or a registered algorithm");
  opt("algo_option", a.algo_options, "Step 3: KEY=VALUE settings of the algorithm");
  optional_number(cmd, "kl_ctl", a.kl_ctl, "Step 3: KL penalty weight (0.1)");
  optional_number(cmd, "clip_reward_value", a.clip_reward_value, "Step 3: reward clamp (5)");
  optional_number(cmd, "cliprange", a.cliprange, "Step 3: actor ratio clip (0.2)");
  optional_number(cmd, "cliprange_value", a.cliprange_value, "Step 3: value clip (0.2)");
  optional_number(cmd, "gamma", a.gamma, "Step 3: discount (1.0)");
  optional_number(cmd, "lam", a.lam, "Step 3: GAE lambda (0.95)");
  opt("do_sample", a.do_sample, "Step 3: sample rollouts (false = greedy)");
  opt("temperature", a.temperature, "Step 3: sampling temperature")->check(CLI::Range(1e-6, 1e6));
  opt("top_k", a.top_k, "Step 3: top-k sampling (0 = off)")->check(non_negative);
  opt("top_p", a.top_p, "Step 3: nucleus sampling (1 = off)")->check(CLI::Range(1e-6, 1.0));
  opt("eval_prompts", a.eval_prompts, "Step 3: held-out prompts evaluated before and after")->check(non_negative);
  opt("max_restarts", a.max_restarts,
      "Step 3: when a worker process this run started dies, restart the roles from the last checkpoint at most this many times")
      ->check(non_negative);
  opt("heartbeat_timeout", a.heartbeat_timeout,
      "Step 3 with --topology: seconds a worker process may leave the controller's heartbeats unanswered once its "
      "roles are up (hung or stopped) before it counts as lost: one started here is killed and, with "
      "--max_restarts, restarted; 0 = no heartbeats")
      ->check(CLI::Range(0.0, 1e6));
  opt("collective_timeout", a.collective_timeout,
      "Seconds a data-parallel rank waits at a rendezvous or collective before failing, naming the ranks that did not arrive")
      ->check(CLI::PositiveNumber);
  opt("topology", a.topology,
      "Step 3: topology JSON saying which roles share a process (placement/examples); roles apart from the actor "
      "run in `troupe worker` processes started here. Default: all four in this process")
      ->check(CLI::ExistingFile);
  opt("cluster", a.cluster,
      "Step 3 with --topology: this machine's resources as a one-node cluster JSON (as for `troupe plan`). "
      "Default: detected")
      ->check(CLI::ExistingFile);
  opt("listen", a.listen,
      "Step 3 with --topology: wait on HOST:PORT for the worker processes to join (`troupe worker --join HOST:PORT` "
      "with TROUPE_SECRET set, here or on other machines) instead of starting them here");
  opt("dp_collectives", a.dp_collectives,
      "Step 3 with --topology: what carries the collectives (gradient averaging, tensor-parallel generation) of a "
      "role placed on several processes: gloo (c10d ProcessGroupGloo), ucx (troupe's ring) or nccl (c10d "
      "ProcessGroupNCCL; each rank on its own GPU, `--device cuda` gives rank r cuda:r modulo the GPUs). Default: "
      "nccl with --device cuda in a CUDA build, else gloo when built with it")
      ->check(CLI::IsMember({"gloo", "ucx", "nccl"}));
  opt("inference_tp_size", a.inference_tp_size,
      "Step 3: tensor-parallel size of the actor's generation layout (DeepSpeed-Chat's flag): groups of this many "
      "actor ranks generate their prompts together, each with 1/size of the attention and MLP weights. Divides "
      "the actor's devices in --topology. Default: the topology's roles.actor.inference_tp_size (1)")
      ->check(positive);
  return {cmd, [cmd, args] { run_train(*cmd, *args); }};
}

}  // namespace troupe::apps
