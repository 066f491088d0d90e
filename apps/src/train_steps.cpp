/// Steps 1, 2 and 3 (and DPO) of `troupe train` from its flags.
#include <cstdlib>

#include <torch/torch.h>

#include <troupe/actors/step3_plan.hpp>
#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>
#include <troupe/data/collate.hpp>
#include <troupe/data/dataset.hpp>
#include <troupe/data/split.hpp>
#include <troupe/engine/dpo.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/engine/metrics_log.hpp>
#include <troupe/engine/model_presets.hpp>
#include <troupe/engine/host_memory.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/offload.hpp>
#include <troupe/engine/supervised_tasks.hpp>
#include <troupe/engine/tensorboard_writer.hpp>
#include <troupe/engine/zero3.hpp>
#include <troupe/kernels/cpu_features.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/partitioned_init.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/tokenizer.hpp>
#include <troupe/transport/c10d_communicator.hpp>

#include "builtin_rewards.hpp"
#include "launch_environment.hpp"
#include "supervised_ranks.hpp"
#include "train_args.hpp"

namespace fs = std::filesystem;

namespace troupe::apps {
namespace {

void require_flag(bool present, const std::string& flag, const std::string& why) {
  if (!present) throw Error(flag + " is required " + why);
}

data::PipelineOptions pipeline_options(const TrainArgs& args, const fs::path& tokenizer_dir,
                                       const std::optional<LaunchEnvironment>& launch = std::nullopt) {
  data::PipelineOptions options;
  require_flag(!args.data_path.empty(), "--data_path", "(SCHEMA=PATH, e.g. Dahoas/rm-static=demo_data)");
  for (const auto& spec : args.data_path) options.data_path.push_back(data::parse_dataset_spec(spec));
  for (const auto& spec : args.sft_only_data_path)
    options.sft_only_data_path.push_back(data::parse_dataset_spec(spec, "--sft_only_data_path"));
  options.split.data_split = data::parse_data_split(args.data_split);
  options.split.seed = static_cast<uint32_t>(args.seed);
  options.lengths.max_seq_len = args.max_seq_len;
  options.lengths.max_prompt_seq_len = args.max_prompt_seq_len;
  options.tokenizer_dir = tokenizer_dir;
  options.cache_dir = args.data_output_path.empty() ? fs::path(args.output_dir) / "data_cache" : fs::path(args.data_output_path);
  if (launch) {
    // Under a launcher each machine needs the data: its local rank 0 tokenizes into the
    // cache and the machine's other ranks wait for the files. Without LOCAL_RANK every
    // rank tokenizes (files are written atomically, so ranks sharing a cache agree).
    options.rank = launch->local_rank.value_or(0);
    options.world_size = launch->local_world.value_or(launch->local_rank ? launch->world : 1);
  }
  return options;
}

engine::ScheduleOptions schedule(const TrainArgs& args, int64_t warmup) {
  engine::ScheduleOptions s;
  s.type = engine::parse_schedule_type(args.lr_scheduler_type);
  s.warmup_steps = warmup;
  return s;
}

/// Where the tokenizer of step 1 or 2 comes from: --tokenizer, else the model's
/// directory. Checks the model flag without loading anything.
fs::path tokenizer_dir_of(const TrainArgs& args) {
  require_flag(!args.model_name_or_path.empty(), "--model_name_or_path", "(a Hugging Face directory or preset:NAME)");
  if (engine::preset_name(args.model_name_or_path)) {
    require_flag(!args.tokenizer.empty(), "--tokenizer", "with a preset model (the vocabulary comes from it)");
    return args.tokenizer;
  }
  const fs::path config = fs::path(args.model_name_or_path) / "config.json";
  if (!fs::exists(config))
    throw Error("--model_name_or_path " + args.model_name_or_path + ": " + config.string() +
                " not found (expected a Hugging Face model directory or preset:NAME)");
  return args.tokenizer.empty() ? fs::path(args.model_name_or_path) : fs::path(args.tokenizer);
}

/// The model of step 1 or 2.
models::CausalLM build_model(const TrainArgs& args, const models::Tokenizer& tokenizer, torch::Device device) {
  if (auto preset = engine::preset_name(args.model_name_or_path)) {
    auto model = engine::make_preset_model(*preset, tokenizer);
    model->to(device);
    return model;
  }
  models::LoadOptions load;
  load.device = device;
  load.value_head = args.step == 2;
  return models::load_pretrained(args.model_name_or_path, load);
}

void apply_lora_flags(models::CausalLMImpl& model, int64_t dim, const TrainArgs& args) {
  if (dim <= 0) {
    if (args.only_optimize_lora) throw Error("--only_optimize_lora needs --lora_dim > 0");
    return;
  }
  models::LoraOptions lora;
  lora.rank = dim;
  lora.module_filter = args.lora_module_name;
  models::apply_lora(model, lora);
  if (args.only_optimize_lora) models::only_optimize_lora(model);
}

/// With --dtype bf16 on the CPU: whether this CPU computes bf16 in hardware, since
/// without bf16 units the bf16 step is emulated and slower than fp32.
void say_cpu_bf16(const std::string& dtype, const torch::Device& device, const std::string& step) {
  if (!device.is_cpu() || engine::parse_compute_dtype(dtype) != torch::kBFloat16) return;
  if (kernels::cpu_features().avx512_bf16)
    log::info(step, ": --dtype bf16: this CPU has bf16 dot-product units (AVX512_BF16), so bf16 matmuls run in hardware");
  else
    log::warn(step, ": --dtype bf16: this CPU has no bf16 units (no AVX512_BF16): bf16 is emulated and slower than "
              "--dtype fp32 here");
}

/// The phase of the data pipeline a step reads: DPO learns from step 2's pairs, as
/// DeepSpeed-Chat's step2_dpo_finetuning does.
int data_phase(int step) { return step == kDpoStep ? 2 : step; }

/// DPO needs chosen/rejected pairs; a dataset without `rejected` leaves none, which is
/// said here rather than as an empty training split after the model is built.
void require_pairs(const data::PhaseData& data) {
  if (data.train.size() > 0) return;
  if (data.train_stats.no_rejected > 0)
    throw Error("--step dpo: none of the " + std::to_string(data.train_stats.samples) +
                " training samples has a 'rejected' answer (DPO trains on chosen/rejected pairs; check --data_path)");
  throw Error("--step dpo: no chosen/rejected pairs in step 2's share of the data (check --data_path and --data_split)");
}

engine::DpoOptions dpo_options(const TrainArgs& args) {
  engine::DpoOptions dpo;
  dpo.beta = args.beta;
  dpo.label_smoothing = args.label_smoothing;
  return dpo;
}

/// Under a launcher each rank was given its own flags: those the ranks must share are
/// compared (one all-reduce), since a difference would otherwise hang at a collective or
/// mix stages. Throws troupe::Error naming the first that differs.
void require_same_on_every_rank(actors::DataParallel& group, const torch::Device& device,
                                const std::vector<std::pair<std::string, int64_t>>& values) {
  std::vector<int64_t> both;  // each value, then each negated: one max gives the largest and the smallest
  for (const auto& [name, value] : values) both.push_back(value);
  for (const auto& [name, value] : values) both.push_back(-value);
  auto tensor = torch::tensor(both, torch::kLong).to(device);  // (2 * values)
  group.all_reduce_max(tensor);
  tensor = tensor.cpu();
  const auto* reduced = tensor.data_ptr<int64_t>();
  for (size_t i = 0; i < values.size(); ++i) {
    const int64_t largest = reduced[i], smallest = -reduced[i + values.size()];
    if (largest != smallest)
      throw Error(values[i].first + " differs between the ranks (" + std::to_string(smallest) + " to " +
                  std::to_string(largest) + "): give every rank the launcher starts the same flags");
  }
}

/// DPO's frozen reference when the policy's layers are partitioned (ZeRO stage 3): a
/// reference that is the policy's own base (LoRA over a frozen base) runs through the
/// policy's gathers; otherwise the policy is gathered whole once to be copied, and the
/// copy's layers are partitioned like the policy's (`partition` keeps them so).
std::shared_ptr<engine::ReferencePolicy> partitioned_reference(engine::TrainEngine& engine, actors::DataParallel& group,
                                                               torch::ScalarType compute_dtype,
                                                               std::unique_ptr<engine::Zero3Partition>& partition) {
  auto model = engine.model();
  if (engine::reference_can_share(*model)) return std::make_shared<engine::ReferencePolicy>(model, nullptr, compute_dtype);
  std::shared_ptr<engine::ReferencePolicy> reference;
  {
    const auto whole = engine.zero3()->gather_full_parameters();
    reference = std::make_shared<engine::ReferencePolicy>(model, nullptr, compute_dtype);
  }
  partition = std::make_unique<engine::Zero3Partition>(reference->model(), group.zero3_collectives());
  return reference;
}

}  // namespace

std::string step_name(int step) { return step == kDpoStep ? "dpo" : "step" + std::to_string(step); }

engine::PhaseResult run_supervised_step(const TrainArgs& args) {
  const auto launch = launch_environment(args.num_processes);  // RANK, WORLD_SIZE, ... of a launcher
  prefix_log_of_started_rank(args.num_processes, launch);
  require_flag(!args.output_dir.empty(), "--output_dir", "(where the trained model goes)");
  torch::manual_seed(args.seed);
  if (args.only_optimize_lora && args.lora_dim <= 0) throw Error("--only_optimize_lora needs --lora_dim > 0");
  const bool dpo = args.step == kDpoStep;
  const std::string name = step_name(args.step);
  if (dpo) engine::check_dpo_options(dpo_options(args));
  if (dpo && args.packing)
    throw Error("--step dpo with --packing: not supported yet (its sequence log-probs are read from padded rows); "
                "drop --packing");
  if (args.offload) log::warn(name, ": ", engine::offload_note("--offload", torch::Device(args.device)));
  say_cpu_bf16(args.dtype, torch::Device(args.device), name);
  // Flags, tokenizer and data first: a wrong schema or path is refused before a large
  // model is built.
  const auto tokenizer_dir = tokenizer_dir_of(args);
  auto tokenizer = models::load_tokenizer(tokenizer_dir);
  auto data = data::load_phase_data(pipeline_options(args, tokenizer_dir, launch), data_phase(args.step));
  if (dpo) require_pairs(data);
  log::info(name, ": ", data.train.size(), " training and ", data.eval.size(), " evaluation samples");
  // Only now the other ranks (--num_processes): the flags and data are checked, and they
  // read the tokenized data this process has cached. Under a launcher, every rank joins here.
  SupervisedRanks ranks(args.num_processes, static_cast<int>(args.zero_stage), name, args.output_dir,
                        torch::Device(args.device), std::chrono::seconds(args.collective_timeout), launch);
  if (ranks.group()) {
    ranks.group()->set_reduce_bucket_size(args.reduce_bucket_size);
    ranks.group()->set_zero3_prefetch_layers(static_cast<int>(args.zero3_prefetch_layers));
  }
  if (launch && ranks.group())
    require_same_on_every_rank(*ranks.group(), ranks.device(),
                               {{"--step", args.step},
                                {"--zero_stage", args.zero_stage},
                                {"--per_device_train_batch_size", args.per_device_train_batch_size},
                                {"--per_device_eval_batch_size", args.per_device_eval_batch_size},
                                {"--gradient_accumulation_steps", args.gradient_accumulation_steps},
                                {"--num_train_epochs", args.num_train_epochs},
                                {"--max_steps", args.max_steps},
                                {"--eval_interval", args.eval_interval},
                                {"--save_interval", args.save_interval},
                                {"--eval_samples", args.eval_samples},
                                {"--lora_dim", args.lora_dim},
                                {"the training samples (the data flags)", data.train.size()},
                                {"the evaluation samples (the data flags)", data.eval.size()}});
  const torch::Device device = ranks.device();
  // The same large tensors every step: no page faults for them. Not when ranks partition
  // the model: what a rank frees of it (the whole gradient under stages 1-2, each
  // gathered layer and its gradients under stage 3) must go back at once.
  if (ranks.world() == 1 || args.zero_stage == 0) {
    engine::keep_freed_host_memory();
  } else {
    engine::return_large_blocks_when_freed();
  }

  // Under ZeRO stage 3 each decoder layer is cut to this rank's chunk as it is built or
  // loaded (DeepSpeed's zero.Init): no rank holds the whole model.
  std::optional<models::PartitionedInit> partitioned_init;
  if (ranks.group() && ranks.group()->partitions_parameters()) partitioned_init.emplace(ranks.rank(), ranks.world());
  auto model = build_model(args, *tokenizer, device);
  if (args.step == 2 && !model->has_value_head()) {
    model->add_value_head();
    model->to(device);
  }
  std::shared_ptr<models::PartitionedLayers> built;
  if (partitioned_init) built = partitioned_init->layers();
  partitioned_init.reset();
  apply_lora_flags(*model, args.lora_dim, args);
  model->set_gradient_checkpointing(args.gradient_checkpointing);
  if (args.dropout) models::set_dropout(*model, *args.dropout);

  engine::SupervisedTaskOptions task_options;
  task_options.train_batch_size = args.per_device_train_batch_size;
  task_options.eval_batch_size = args.per_device_eval_batch_size;
  task_options.max_seq_len = args.max_seq_len;
  task_options.pad_token_id = data::pad_token_id(*tokenizer);
  task_options.seed = args.seed;
  task_options.max_eval_samples = args.eval_samples;
  task_options.rank = ranks.rank();
  task_options.world_size = ranks.world();
  task_options.packing = args.packing;
  if (const auto& group = ranks.group())
    task_options.sum_over_ranks = [group](torch::Tensor& tensor) { group->all_reduce_sum(tensor); };
  const auto compute_dtype = engine::parse_compute_dtype(args.dtype);
  // The frozen reference of DPO is the model as loaded: its own base with the adapters off
  // for a LoRA model whose base is frozen, else a copy (bf16 linears under --dtype bf16).
  // A partitioned model gets it once the engine holds the partition.
  std::shared_ptr<engine::ReferencePolicy> reference;
  std::unique_ptr<engine::Zero3Partition> reference_partition;
  const bool partitioned = ranks.group() && ranks.group()->partitions_parameters();
  if (dpo && !partitioned) reference = std::make_shared<engine::ReferencePolicy>(model, nullptr, compute_dtype);

  engine::TrainOptions train;
  train.optimizer.learning_rate = args.learning_rate;
  train.optimizer.weight_decay = args.weight_decay;
  train.optimizer.lora_learning_rate = args.lora_learning_rate;
  train.schedule = schedule(args, args.num_warmup_steps);
  const int64_t batches_per_epoch = engine::training_batches_per_epoch(data.train.size(), task_options);
  train.schedule.total_steps = std::max<int64_t>(1, args.num_train_epochs * batches_per_epoch / args.gradient_accumulation_steps);
  train.gradient_accumulation_steps = args.gradient_accumulation_steps;
  train.max_grad_norm = args.max_grad_norm;
  train.compute_dtype = compute_dtype;
  engine::TrainEngine engine(model, train);
  if (const auto& group = ranks.group()) group->attach(engine, std::move(built));

  engine::PhaseTask task;
  if (dpo) {
    if (partitioned) reference = partitioned_reference(engine, *ranks.group(), compute_dtype, reference_partition);
    if (reference_partition)
      log::info(name, ": reference model: a frozen copy, ZeRO-3: layers partitioned over ", reference_partition->world(),
                " ranks (holds ", engine::format_bytes(reference_partition->param_resident_bytes()), " of ",
                engine::format_bytes(reference_partition->whole_param_bytes()), " of parameters)");
    else
      log::info(name, ": ", reference->memory_summary());
    task = engine::make_dpo_task(data, task_options, dpo_options(args), reference);
  } else {
    task = args.step == 1 ? engine::make_sft_task(data, task_options) : engine::make_reward_model_task(data, task_options);
  }

  fs::create_directories(args.output_dir);
  // Rank 0 reports for all (each rank's own lines go to its log).
  std::optional<engine::MetricsLog> metrics;
  std::optional<engine::TensorBoardWriter> tensorboard;
  if (ranks.rank() == 0) {
    metrics.emplace(fs::path(args.output_dir) / "metrics.jsonl", args.resume);
    tensorboard.emplace(fs::path(args.output_dir) / "tensorboard");
  }
  engine::PhaseOptions phase;
  phase.phase = name;
  phase.epochs = args.num_train_epochs;
  phase.eval_interval = args.eval_interval;
  phase.save_interval = args.save_interval;
  phase.max_steps = args.max_steps;
  phase.output_dir = args.output_dir;
  phase.tokenizer_dir = tokenizer_dir;
  phase.resume = args.resume;
  phase.metrics = metrics ? &*metrics : nullptr;
  phase.tensorboard = tensorboard ? &*tensorboard : nullptr;
  phase.rank = ranks.rank();
  phase.world = ranks.world();
  phase.zero_stage = ranks.world() > 1 ? static_cast<int>(args.zero_stage) : 0;
  if (const auto& group = ranks.group()) phase.min_over_ranks = [group](int64_t value) { return -group->max(-value); };
  auto result = engine::run_phase(engine, task, phase);
  ranks.wait_for_ranks();
  log::info(phase.phase, ": ", result.optimizer_steps, " optimizer steps, ", result.tokens, " tokens in ", result.seconds,
            " s", result.finished ? "; model saved to " + args.output_dir : "; stopped at --max_steps (resume with --resume)");
  return result;
}

actors::Step3Result run_ppo_step(const TrainArgs& args) {
  register_builtin_reward_functions();
  require_flag(!args.output_dir.empty(), "--output_dir", "(where actor/ and critic/ go)");
  require_flag(!args.actor_model_name_or_path.empty(), "--actor_model_name_or_path", "for step 3 (step 1's output)");
  actors::Step3Config c;
  c.actor_model = args.actor_model_name_or_path;
  c.critic_model = args.critic_model_name_or_path;
  c.reward_model = args.reward_model_name_or_path;
  c.reward_function = args.reward_function;
  c.reward_url = args.reward_url;
  c.reward_timeout = args.reward_timeout;
  c.eval_function = args.eval_function;
  actors::check_reward_source(c);
  if (c.critic_model.empty() && args.algo == "ppo")
    throw Error("--critic_model_name_or_path is required for step 3 with --algo ppo (step 2's output)");
  if (c.reward_model.empty() && c.critic_model.empty() && c.reward_from_model())
    throw Error("step 3 needs a reward: --reward_model_name_or_path, --critic_model_name_or_path, --reward_function "
                "or --reward_url");
  c.algorithm = args.algo;
  auto set = [&](const char* key, const std::optional<double>& value) {
    if (value) c.algorithm_options.set(key, *value);
  };
  set("kl_ctl", args.kl_ctl);
  set("clip_reward_value", args.clip_reward_value);
  set("cliprange", args.cliprange);
  set("cliprange_value", args.cliprange_value);
  set("gamma", args.gamma);
  set("lam", args.lam);
  for (const auto& option : args.algo_options) {
    const auto eq = option.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("--algo_option \"" + option + "\": expected KEY=VALUE");
    try {
      c.algorithm_options.set(option.substr(0, eq), std::stod(option.substr(eq + 1)));
    } catch (const std::logic_error&) {
      throw Error("--algo_option \"" + option + "\": the value is not a number");
    }
  }
  const fs::path tokenizer_dir = args.tokenizer.empty() ? fs::path(args.actor_model_name_or_path) : fs::path(args.tokenizer);
  c.data = pipeline_options(args, tokenizer_dir);
  c.unsupervised_data = args.unsupervised_dataset_name;
  c.unsup_coef = args.unsup_coef;
  c.generation_batch_size = args.per_device_generation_batch_size;
  c.training_batch_size = args.per_device_training_batch_size;
  c.max_tokens_per_microbatch = args.max_tokens_per_microbatch;
  c.generation_batches = args.generation_batches;
  c.ppo_epochs = args.ppo_epochs;
  c.epochs = args.num_train_epochs;
  c.max_steps = args.max_steps;
  c.generation.max_new_tokens = args.max_answer_seq_len;
  c.generation.do_sample = args.do_sample;
  c.generation.temperature = args.temperature;
  c.generation.top_k = args.top_k;
  c.generation.top_p = args.top_p;
  c.generation.seed = args.seed;
  const int64_t warmup = args.step3_num_warmup_steps.value_or(100);
  for (auto* train : {&c.actor_train, &c.critic_train}) {
    train->schedule = schedule(args, warmup);
    train->optimizer.lora_learning_rate = args.lora_learning_rate;
    train->max_grad_norm = args.max_grad_norm;
    train->compute_dtype = engine::parse_compute_dtype(args.dtype);
  }
  c.actor_train.optimizer.learning_rate = args.actor_learning_rate;
  c.actor_train.optimizer.weight_decay = args.actor_weight_decay;
  c.critic_train.optimizer.learning_rate = args.critic_learning_rate;
  c.critic_train.optimizer.weight_decay = args.critic_weight_decay;
  c.actor_lora_dim = args.actor_lora_dim;
  c.critic_lora_dim = args.critic_lora_dim;
  c.lora_module_name = args.lora_module_name;
  c.only_optimize_lora = args.only_optimize_lora;
  c.enable_ema = args.enable_ema;
  c.release_inference_cache = args.release_inference_cache;
  c.inference_dtype = args.inference_dtype;
  c.inference_weights = args.inference_weights;
  c.async_rollout = args.async_rollout;
  c.rollout_is_truncation = args.rollout_is_truncation;
  c.actor_gradient_checkpointing = args.actor_gradient_checkpointing;
  c.critic_gradient_checkpointing = args.critic_gradient_checkpointing;
  c.dropout = args.dropout;
  c.device = torch::Device(args.device);
  c.seed = args.seed;
  c.output_dir = args.output_dir;
  c.eval_prompts = args.eval_prompts;
  c.eval_interval = args.eval_interval;
  c.save_interval = args.save_interval;
  c.resume = args.resume;
  c.max_restarts = args.max_restarts;
  c.collective_timeout_seconds = args.collective_timeout;
  c.heartbeat_timeout_seconds = args.heartbeat_timeout;
  c.rejoin_timeout_seconds = args.rejoin_timeout;
  c.offload_reference_model = args.offload_reference_model;
  c.offload = args.offload;
  c.topology = args.topology;
  c.inference_tp_size = static_cast<int>(args.inference_tp_size);
  c.cluster = args.cluster;
  c.listen = args.listen;
  if (!args.dp_collectives.empty()) c.dp_collectives = actors::parse_collectives(args.dp_collectives, "--dp_collectives");
  else if (c.device.is_cuda() && transport::nccl_available()) c.dp_collectives = actors::Collectives::kNccl;  // GPU ranks
  if (!c.listen.empty()) {
    if (c.topology.empty()) throw Error("--listen needs --topology (which roles go to the worker processes)");
    const char* secret = std::getenv("TROUPE_SECRET");
    if (secret == nullptr || *secret == '\0')
      throw Error("--listen: set TROUPE_SECRET to the shared secret the workers will prove");
    c.secret = secret;
  }

  fs::create_directories(args.output_dir);
  // A resumed run keeps the rows up to its checkpoint (run_step3 cuts the rest).
  engine::MetricsLog metrics(fs::path(args.output_dir) / "metrics.jsonl", args.resume);
  engine::TensorBoardWriter tensorboard(fs::path(args.output_dir) / "tensorboard");
  c.metrics = &metrics;
  c.tensorboard = &tensorboard;
  // Step 3 keeps glibc's defaults: its phases allocate tensors of many sizes, and keeping
  // what they free cost a 1.3B LoRA cycle 1.6 GiB of peak RSS for 12% of its time.
  say_cpu_bf16(args.dtype, c.device, "step3");
  auto result = actors::run_step3(c);
  auto line = [](const char* when, const actors::PolicyEvaluation& e) {
    log::info("step3: ", when, ": reward ", e.reward_score, ", gold ", e.gold_score, ", KL ", e.kl_per_answer,
              ", answer length ", e.answer_length, " (", e.prompts, " held-out prompts)");
  };
  if (result.before.prompts) line("before (greedy)", result.before);
  if (result.after.prompts) line("after (greedy)", result.after);
  if (result.before_sampled.prompts) line("before (sampled)", result.before_sampled);
  if (result.after_sampled.prompts) line("after (sampled)", result.after_sampled);
  log::info("step3: ", result.cycles, " cycles in ", result.seconds, " s; actor saved to ",
            (fs::path(args.output_dir) / "actor").string());
  if (result.remote_fetches > 0)
    log::info("step3: ", result.remote_fetches, " batches pulled from worker processes over UCX");
  return result;
}

}  // namespace troupe::apps
