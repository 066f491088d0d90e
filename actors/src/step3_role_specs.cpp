/// Step-3 role specs and the factories that turn them back into roles.
#include <troupe/actors/step3_role_specs.hpp>

#include <torch/cuda.h>

#include <cstdio>
#include <mutex>
#include <stdexcept>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/actors/host_port.hpp>
#include <troupe/actors/remote_reward_function.hpp>
#include <troupe/actors/step3_models.hpp>
#include <troupe/actors/step3_roles.hpp>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/data/unsupervised.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/models/tokenizer.hpp>
#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/reward_function.hpp>

namespace troupe::actors {
namespace {

constexpr const char* algorithm_option_prefix = "algo.";

/// Shortest text that reads back as the same double.
std::string number(double value) {
  char text[40];
  std::snprintf(text, sizeof(text), "%.17g", value);
  return text;
}

/// Reads a spec's options, naming the role and the option in every error.
class SpecReader {
 public:
  explicit SpecReader(const RoleSpec& spec) : spec_(spec) {}

  std::string text(const std::string& key, const std::string& fallback = "") const {
    auto found = spec_.options.find(key);
    return found == spec_.options.end() ? fallback : found->second;
  }
  std::string required(const std::string& key) const {
    auto value = text(key);
    if (value.empty()) fail(key, "is missing");
    return value;
  }
  double real(const std::string& key, double fallback) const {
    auto value = text(key);
    if (value.empty()) return fallback;
    try {
      size_t used = 0;
      double parsed = std::stod(value, &used);
      if (used == value.size()) return parsed;
    } catch (const std::logic_error&) {
    }
    fail(key, "\"" + value + "\" is not a number");
    return 0;
  }
  int64_t integer(const std::string& key, int64_t fallback) const {
    const double value = real(key, static_cast<double>(fallback));
    if (value != static_cast<double>(static_cast<int64_t>(value))) fail(key, "must be a whole number");
    return static_cast<int64_t>(value);
  }
  bool flag(const std::string& key) const { return integer(key, 0) != 0; }
  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw Error(describe(spec_.id) + " (factory " + spec_.factory + "): option \"" + key + "\" " + why);
  }
  const RoleSpec& spec() const { return spec_; }

 private:
  const RoleSpec& spec_;
};

RoleSpec base_spec(const char* factory, const char* role, const Step3Config& config) {
  RoleSpec spec;
  spec.factory = factory;
  spec.id = RoleId{role, 0, 1};
  spec.options["device"] = config.device.str();
  spec.options["seed"] = std::to_string(config.seed);
  spec.options["tokenizer"] = (config.data.tokenizer_dir.empty() ? config.actor_model : config.data.tokenizer_dir).string();
  return spec;
}

/// This rank's device (rank_device over this machine's CUDA devices).
torch::Device device_of_rank(const SpecReader& reader) {
  const torch::Device configured(reader.text("device", "cpu"));
  if (!configured.is_cuda() || configured.has_index()) return configured;
  return rank_device(configured, reader.spec().id.rank, static_cast<int>(torch::cuda::device_count()));
}

RoleModelOptions model_options(const SpecReader& reader, bool value_head) {
  RoleModelOptions options;
  options.value_head = value_head;
  options.lora_dim = reader.integer("lora_dim", 0);
  options.lora_module_name = reader.text("lora_module_name");
  options.only_optimize_lora = reader.flag("only_optimize_lora");
  options.gradient_checkpointing = reader.flag("gradient_checkpointing");
  if (!reader.text("dropout").empty()) options.dropout = reader.real("dropout", 0);
  options.device = device_of_rank(reader);
  options.compute_dtype = engine::parse_compute_dtype(reader.text("dtype", "fp32"), "option dtype");
  return options;
}

std::string dtype_option(torch::ScalarType dtype) { return dtype == torch::kBFloat16 ? "bf16" : "fp32"; }

void write_train_options(RoleSpec& spec, const engine::TrainOptions& train) {
  auto& o = spec.options;
  o["lr"] = number(train.optimizer.learning_rate);
  o["weight_decay"] = number(train.optimizer.weight_decay);
  o["lora_lr"] = number(train.optimizer.lora_learning_rate);
  o["beta1"] = number(train.optimizer.beta1);
  o["beta2"] = number(train.optimizer.beta2);
  o["eps"] = number(train.optimizer.eps);
  o["schedule"] = engine::schedule_name(train.schedule.type);
  o["warmup_steps"] = std::to_string(train.schedule.warmup_steps);
  o["total_steps"] = std::to_string(train.schedule.total_steps);
  o["gradient_accumulation_steps"] = std::to_string(train.gradient_accumulation_steps);
  o["max_grad_norm"] = number(train.max_grad_norm);
  o["dtype"] = dtype_option(train.compute_dtype);
}

engine::TrainOptions read_train_options(const SpecReader& reader) {
  engine::TrainOptions train;
  train.optimizer.learning_rate = reader.real("lr", train.optimizer.learning_rate);
  train.optimizer.weight_decay = reader.real("weight_decay", train.optimizer.weight_decay);
  train.optimizer.lora_learning_rate = reader.real("lora_lr", train.optimizer.lora_learning_rate);
  train.optimizer.beta1 = reader.real("beta1", train.optimizer.beta1);
  train.optimizer.beta2 = reader.real("beta2", train.optimizer.beta2);
  train.optimizer.eps = reader.real("eps", train.optimizer.eps);
  train.schedule.type = engine::parse_schedule_type(reader.text("schedule", "cosine"), "option schedule");
  train.schedule.warmup_steps = reader.integer("warmup_steps", 0);
  train.schedule.total_steps = reader.integer("total_steps", 1);
  train.gradient_accumulation_steps = reader.integer("gradient_accumulation_steps", 1);
  train.max_grad_norm = reader.real("max_grad_norm", train.max_grad_norm);
  train.compute_dtype = engine::parse_compute_dtype(reader.text("dtype", "fp32"), "option dtype");
  return train;
}

/// What the actor's and the critic's specs share: the model with its LoRA and
/// checkpointing, the optimizer and schedule over `total_steps`, the algorithm and the
/// PPO minibatching.
RoleSpec trained_role_spec(const char* factory, const char* role, const Step3Config& config,
                           const std::filesystem::path& model, int64_t lora_dim, bool gradient_checkpointing,
                           engine::TrainOptions train, int64_t total_steps) {
  auto spec = base_spec(factory, role, config);
  auto& o = spec.options;
  o["model"] = model.string();
  o["lora_dim"] = std::to_string(lora_dim);
  o["lora_module_name"] = config.lora_module_name;
  o["only_optimize_lora"] = config.only_optimize_lora ? "1" : "0";
  o["gradient_checkpointing"] = gradient_checkpointing ? "1" : "0";
  if (config.dropout) o["dropout"] = number(*config.dropout);
  train.schedule.total_steps = total_steps;
  write_train_options(spec, train);
  o["algorithm"] = config.algorithm;
  for (const auto& [key, value] : config.algorithm_options.values()) o[algorithm_option_prefix + key] = number(value);
  o["ppo_epochs"] = std::to_string(config.ppo_epochs);
  o["minibatch_size"] = std::to_string(config.training_batch_size);
  return spec;
}

std::shared_ptr<const rl::Algorithm> read_algorithm(const SpecReader& reader) {
  rl::AlgorithmOptions algorithm_options;
  for (const auto& [key, value] : reader.spec().options)
    if (key.rfind(algorithm_option_prefix, 0) == 0)
      algorithm_options.set(key.substr(std::string(algorithm_option_prefix).size()), reader.real(key, 0));
  return rl::AlgorithmRegistry::global().create(reader.required("algorithm"), algorithm_options);
}

PpoTrainingOptions read_ppo_options(const SpecReader& reader) {
  PpoTrainingOptions ppo;
  ppo.ppo_epochs = reader.integer("ppo_epochs", 1);
  ppo.minibatch_size = reader.integer("minibatch_size", 16);
  ppo.seed = static_cast<uint64_t>(reader.integer("seed", 1234));
  return ppo;
}

/// Rank id.rank of id.world: the data-parallel group it trains in, from the
/// "dp_rendezvous" HOST:PORT the controller hosts, "dp_collectives" (gloo, ucx or nccl) and
/// "zero_stage" (>= 1: optimizer state partitioned over the ranks).
std::shared_ptr<DataParallel> data_parallel_group(const SpecReader& reader) {
  const auto& id = reader.spec().id;
  if (id.world <= 1) return nullptr;
  const auto where = parse_host_port(reader.required("dp_rendezvous"), describe(id) + ": option dp_rendezvous");
  const auto collectives = parse_collectives(reader.text("dp_collectives", collectives_name(default_collectives())),
                                             describe(id) + ": option dp_collectives");
  const auto device = device_of_rank(reader);
  const auto timeout = std::chrono::seconds(reader.integer("collective_timeout_s", 300));
  auto group = std::make_shared<DataParallel>(where.host, where.port, id.rank, id.world, id.role, timeout, collectives,
                                              device.is_cuda() ? device.index() : -1);
  group->set_zero_stage(static_cast<int>(reader.integer("zero_stage", 0)));
  return group;
}

std::shared_ptr<RoleModel> make_critic(const RoleSpec& spec) {
  SpecReader reader(spec);
  // The same seed on every rank: fresh weights (a new value head, LoRA) start equal.
  torch::manual_seed(static_cast<uint64_t>(reader.integer("seed", 1234)));
  auto model = load_role_model(reader.required("model"), model_options(reader, true), "critic");
  return std::make_shared<CriticRole>(model, read_train_options(reader), read_algorithm(reader), read_ppo_options(reader),
                                      reader.required("tokenizer"), data_parallel_group(reader));
}

/// "1,2,3" -> {1, 2, 3}; naming the option when an item is not a whole number.
std::vector<int64_t> read_ids(const SpecReader& reader, const std::string& key) {
  std::vector<int64_t> ids;
  const auto text = reader.text(key);
  size_t start = 0;
  while (start < text.size()) {
    const auto end = std::min(text.find(',', start), text.size());
    try {
      size_t used = 0;
      ids.push_back(std::stoll(text.substr(start, end - start), &used));
      if (used != end - start) throw std::invalid_argument(key);
    } catch (const std::logic_error&) {
      reader.fail(key, "\"" + text + "\" is not a comma-separated list of token ids");
    }
    start = end + 1;
  }
  return ids;
}

/// The actor rank of this process, so that a reference colocated with it (a worker of a
/// data-parallel actor hosts both; the actor is spawned first) runs as the controller's
/// does: on the actor's base when the actor has LoRA adapters.
struct ActorHere {
  std::mutex mutex;
  std::weak_ptr<PolicyRole> role;
  std::string model;
};
ActorHere& actor_here() {
  static ActorHere here;
  return here;
}

std::shared_ptr<RoleModel> make_reference(const RoleSpec& spec) {
  return std::make_shared<ReferenceRole>(make_reference_policy(spec), reference_partition_group(spec));
}

std::shared_ptr<RoleModel> make_reward(const RoleSpec& spec) {
  SpecReader reader(spec);
  if (const auto url = reader.text("reward_url"); !url.empty()) {
    RemoteRewardOptions remote;
    remote.timeout_seconds = reader.real("reward_timeout", remote.timeout_seconds);
    return std::make_shared<RewardRole>(std::make_shared<RemoteRewardFunction>(url, remote),
                                        models::load_tokenizer(reader.required("tokenizer")), url);
  }
  const auto function = reader.text("reward_function");
  if (!function.empty())
    return std::make_shared<RewardRole>(rl::RewardFunctionRegistry::global().create(function),
                                        models::load_tokenizer(reader.required("tokenizer")), function);
  auto options = model_options(reader, true);
  options.lora_dim = 0;
  options.gradient_checkpointing = false;
  options.dropout.reset();
  // zero_stage 3: the ranks partition the model's layers (joined at dp_rendezvous).
  auto group = reader.integer("zero_stage", 0) == 3 ? data_parallel_group(reader) : nullptr;
  return std::make_shared<RewardRole>(load_role_model(reader.required("model"), options, "reward"), group,
                                      options.compute_dtype);
}

std::shared_ptr<RoleModel> make_actor(const RoleSpec& spec) { return make_policy_role(spec); }

}  // namespace

torch::Device rank_device(const torch::Device& configured, int rank, int visible_cuda_devices) {
  if (!configured.is_cuda() || configured.has_index() || visible_cuda_devices < 1) return configured;
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(rank % visible_cuda_devices)};
}

std::shared_ptr<PolicyRole> make_policy_role(const RoleSpec& spec) {
  SpecReader reader(spec);
  // The same seed on every rank: fresh LoRA adapters start equal.
  torch::manual_seed(static_cast<uint64_t>(reader.integer("seed", 1234)));
  auto actor = load_role_model(reader.required("model"), model_options(reader, false), "actor");
  engine::HybridEngineOptions hybrid_options;
  hybrid_options.release_inference_cache = reader.flag("release_inference_cache");
  hybrid_options.inference_dtype = models::inference_dtype_from_name(reader.text("inference_dtype", "fp32"), "--inference_dtype");
  hybrid_options.log_switches = false;
  hybrid_options.compute_dtype = read_train_options(reader).compute_dtype;
  auto hybrid = std::make_shared<engine::HybridEngine>(actor, hybrid_options);

  models::GenerationOptions generation;
  generation.max_new_tokens = reader.integer("max_new_tokens", generation.max_new_tokens);
  generation.do_sample = reader.flag("do_sample");
  generation.temperature = reader.real("temperature", generation.temperature);
  generation.top_k = reader.integer("top_k", generation.top_k);
  generation.top_p = reader.real("top_p", generation.top_p);
  generation.seed = static_cast<uint64_t>(reader.integer("generation_seed", 0));
  generation.eos_token_ids = read_ids(reader, "eos_token_ids");
  if (!reader.text("pad_token_id").empty()) generation.pad_token_id = reader.integer("pad_token_id", 0);

  auto ppo = read_ppo_options(reader);
  ppo.enable_ema = reader.flag("enable_ema");
  ppo.unsup_coef = reader.real("unsup_coef", ppo.unsup_coef);
  ppo.unsupervised_batch = reader.integer("unsupervised_batch", ppo.unsupervised_batch);
  const auto corpus = reader.text("unsupervised_data");
  const auto tokenizer_dir = reader.required("tokenizer");
  if (!corpus.empty() && ppo.unsup_coef > 0)
    ppo.unsupervised = std::make_shared<data::UnsupervisedBlocks>(data::make_unsupervised_blocks(
        data::read_text_corpus(corpus), *models::load_tokenizer(tokenizer_dir), reader.integer("unsupervised_block", 0)));

  auto group = data_parallel_group(reader);
  // Generation layout: groups of inference_tp_size actor ranks generate tensor-parallel.
  if (const auto tp = static_cast<int>(reader.integer("inference_tp_size", 1)); tp > 1) {
    if (!group) reader.fail("inference_tp_size", std::to_string(tp) + " needs the actor on " + std::to_string(tp) + " ranks or a multiple");
    try {
      hybrid->set_tensor_parallel(group->generation_group(tp));
    } catch (const Error& e) {
      reader.fail("inference_tp_size", e.what());  // e.g. heads that do not split that way
    }
  }
  auto role = std::make_shared<PolicyRole>(hybrid, read_train_options(reader), generation, read_algorithm(reader), ppo,
                                           tokenizer_dir, group);
  role->set_prompts_per_generation(reader.integer("prompts_per_generation", 0));
  auto& here = actor_here();
  std::lock_guard<std::mutex> lock(here.mutex);
  here.role = role;
  here.model = reader.required("model");
  return role;
}

std::shared_ptr<engine::ReferencePolicy> make_reference_policy(const RoleSpec& spec) {
  SpecReader reader(spec);
  {
    auto& here = actor_here();
    std::lock_guard<std::mutex> lock(here.mutex);
    if (auto actor = here.role.lock(); actor && here.model == reader.required("model")) {
      auto& hybrid = actor->hybrid();
      if (!hybrid.zero3() || engine::reference_can_share(*hybrid.model()))
        return std::make_shared<engine::ReferencePolicy>(hybrid.model(), hybrid.model_mutex(),
                                                         actor->trainer().options().compute_dtype);
    }
  }
  auto options = model_options(reader, false);
  options.lora_dim = 0;  // the reference is the initial policy: adapters start at zero
  auto actor = load_role_model(reader.required("model"), options, "reference");
  return std::make_shared<engine::ReferencePolicy>(actor, nullptr, options.compute_dtype);
}

std::shared_ptr<DataParallel> reference_partition_group(const RoleSpec& spec) {
  SpecReader reader(spec);
  return reader.integer("zero_stage", 0) == 3 ? data_parallel_group(reader) : nullptr;
}

RoleSpec actor_role_spec(const Step3Config& config, const models::GenerationOptions& generation, int64_t total_steps) {
  auto spec = trained_role_spec("step3_actor", "actor", config, config.actor_model, config.actor_lora_dim,
                                config.actor_gradient_checkpointing, config.actor_train, total_steps);
  auto& o = spec.options;
  o["enable_ema"] = config.enable_ema ? "1" : "0";
  o["release_inference_cache"] = config.release_inference_cache ? "1" : "0";
  o["inference_dtype"] = config.inference_dtype;
  if (!config.unsupervised_data.empty() && config.unsup_coef > 0) {
    o["unsupervised_data"] = config.unsupervised_data.string();
    o["unsup_coef"] = number(config.unsup_coef);
    o["unsupervised_batch"] = std::to_string(config.training_batch_size);
    o["unsupervised_block"] = std::to_string(config.data.lengths.max_prompt_seq_len + generation.max_new_tokens);
  }
  o["max_new_tokens"] = std::to_string(generation.max_new_tokens);
  o["do_sample"] = generation.do_sample ? "1" : "0";
  o["temperature"] = number(generation.temperature);
  o["top_k"] = std::to_string(generation.top_k);
  o["top_p"] = number(generation.top_p);
  o["generation_seed"] = std::to_string(generation.seed);
  std::string eos;
  for (const auto id : generation.eos_token_ids) eos += (eos.empty() ? "" : ",") + std::to_string(id);
  o["eos_token_ids"] = eos;
  if (generation.pad_token_id) o["pad_token_id"] = std::to_string(*generation.pad_token_id);
  if (config.generation_batches > 1) o["prompts_per_generation"] = std::to_string(config.generation_batch_size);
  return spec;
}

RoleSpec critic_role_spec(const Step3Config& config, int64_t total_steps) {
  return trained_role_spec("step3_critic", "critic", config, config.critic_model, config.critic_lora_dim,
                           config.critic_gradient_checkpointing, config.critic_train, total_steps);
}

RoleSpec reference_role_spec(const Step3Config& config) {
  auto spec = base_spec("step3_reference", "reference", config);
  spec.options["model"] = config.actor_model.string();
  spec.options["dtype"] = dtype_option(config.actor_train.compute_dtype);  // computes as the actor does
  return spec;
}

RoleSpec reward_role_spec(const Step3Config& config) {
  auto spec = base_spec("step3_reward", "reward", config);
  if (!config.reward_url.empty()) {
    spec.options["reward_url"] = config.reward_url;
    spec.options["reward_timeout"] = number(config.reward_timeout);
  } else if (!config.reward_function.empty()) spec.options["reward_function"] = config.reward_function;
  else spec.options["model"] = (config.reward_model.empty() ? config.critic_model : config.reward_model).string();
  spec.options["dtype"] = dtype_option(config.critic_train.compute_dtype);
  return spec;
}

RoleFactories step3_role_factories() {
  return {{"step3_actor", make_actor},
          {"step3_critic", make_critic},
          {"step3_reference", make_reference},
          {"step3_reward", make_reward}};
}

}  // namespace troupe::actors
