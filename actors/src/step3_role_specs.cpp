/// Step-3 role specs and the factories that turn them back into roles. The settings go
/// through the tables of step3_spec_tables.hpp both ways.
#include "step3_role_specs.hpp"

#include <torch/cuda.h>

#include <algorithm>
#include <stdexcept>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/actors/step3_plan.hpp>
#include "host_port.hpp"
#include "remote_reward_function.hpp"
#include "step3_models.hpp"
#include "step3_roles.hpp"
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/data/unsupervised.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/models/tokenizer.hpp>
#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/reward_function.hpp>

#include "spec_fields.hpp"
#include "step3_spec_tables.hpp"

namespace troupe::actors {
namespace {

/// A spec for rank 0 of `role` (Step3Runtime numbers the others) with the basics: the
/// model (none for a reward function or endpoint), tokenizer, device and seed.
RoleSpec base_spec(const char* factory, const char* role, const Step3Config& config,
                   const std::optional<std::filesystem::path>& model) {
  RoleSpec spec;
  spec.factory = factory;
  spec.id = RoleId{role, 0, 1};
  RoleBasics basics;
  if (model) basics.model = model->string();
  basics.tokenizer = (config.data.tokenizer_dir.empty() ? config.actor_model : config.data.tokenizer_dir).string();
  basics.device = config.device.str();
  basics.seed = config.seed;
  write_spec_fields(spec, basics);
  return spec;
}

/// The spec's model directory; fails naming the option when there is none.
std::string model_dir(const SpecReader& reader, const RoleBasics& basics) {
  return reader.nonempty("model", basics.model.value_or(""));
}

/// This rank's device (rank_device over this machine's CUDA devices).
torch::Device device_of_rank(const SpecReader& reader, const RoleBasics& basics) {
  std::optional<torch::Device> configured;
  try {
    configured.emplace(basics.device);
  } catch (const std::exception&) {
    reader.fail("device", "\"" + basics.device + "\" is not a device (cpu, cuda or cuda:N)");
  }
  if (!configured->is_cuda() || configured->has_index()) return *configured;
  return rank_device(*configured, reader.spec().id.rank, static_cast<int>(torch::cuda::device_count()));
}

RoleModelOptions read_model_options(const SpecReader& reader, const RoleBasics& basics, bool value_head) {
  auto options = read_spec_fields<RoleModelOptions>(reader);
  options.value_head = value_head;
  options.device = device_of_rank(reader, basics);
  return options;
}

/// What the actor's and the critic's specs share: the model with its LoRA and
/// checkpointing, the optimizer and schedule over `total_steps`, the algorithm and the
/// PPO minibatching (`ppo` brings what only the actor sets).
RoleSpec trained_role_spec(const char* factory, const char* role, const Step3Config& config,
                           const std::filesystem::path& model, int64_t lora_dim, bool gradient_checkpointing,
                           engine::TrainOptions train, int64_t total_steps, PpoTrainingOptions ppo) {
  auto spec = base_spec(factory, role, config, model);
  RoleModelOptions model_options;
  model_options.lora_dim = lora_dim;
  model_options.lora_module_name = config.lora_module_name;
  model_options.only_optimize_lora = config.only_optimize_lora;
  model_options.gradient_checkpointing = gradient_checkpointing;
  model_options.dropout = config.dropout;
  model_options.compute_dtype = train.compute_dtype;
  write_spec_fields(spec, model_options);
  train.schedule.total_steps = total_steps;
  write_spec_fields(spec, train);
  write_spec_fields(spec, AlgorithmSpec{config.algorithm, config.algorithm_options});
  ppo.ppo_epochs = config.ppo_epochs;
  ppo.minibatch_size = config.training_batch_size;
  ppo.max_tokens_per_microbatch = config.max_tokens_per_microbatch;
  ppo.seed = config.seed;
  write_spec_fields(spec, ppo);
  return spec;
}

std::shared_ptr<const rl::Algorithm> read_algorithm(const SpecReader& reader) {
  const auto algorithm = read_spec_fields<AlgorithmSpec>(reader);
  return rl::AlgorithmRegistry::global().create(reader.nonempty("algorithm", algorithm.name), algorithm.options);
}

/// Rank id.rank of id.world: the data-parallel group it trains in, meeting at the
/// rendezvous the controller hosts (DataParallelSpec); none for a role on one rank.
std::shared_ptr<DataParallel> data_parallel_group(const SpecReader& reader, const RoleBasics& basics) {
  const auto& id = reader.spec().id;
  if (id.world <= 1) return nullptr;
  const auto dp = read_spec_fields<DataParallelSpec>(reader);
  const auto where = parse_host_port(reader.nonempty("dp_rendezvous", dp.rendezvous), reader.where("dp_rendezvous"));
  const auto device = device_of_rank(reader, basics);
  auto group = std::make_shared<DataParallel>(where.host, where.port, id.rank, id.world, id.role,
                                              std::chrono::seconds(dp.collective_timeout_seconds), dp.collectives,
                                              device.is_cuda() ? device.index() : -1);
  group->set_zero_stage(dp.zero_stage);
  group->set_reduce_bucket_size(dp.reduce_bucket_size);
  group->set_zero3_prefetch_layers(dp.zero3_prefetch_layers);
  return group;
}

std::shared_ptr<RoleModel> make_critic(const RoleSpec& spec, ProcessRoles&) {
  SpecReader reader(spec);
  const auto basics = read_spec_fields<RoleBasics>(reader);
  // The same seed on every rank: fresh weights (a new value head, LoRA) start equal.
  torch::manual_seed(basics.seed);
  auto group = data_parallel_group(reader, basics);
  auto critic = load_rank_model(model_dir(reader, basics), read_model_options(reader, basics, true), "critic", group.get());
  return std::make_shared<CriticRole>(critic.model, read_spec_fields<engine::TrainOptions>(reader), read_algorithm(reader),
                                      read_spec_fields<PpoTrainingOptions>(reader),
                                      reader.nonempty("tokenizer", basics.tokenizer), group, critic.partitioned);
}

std::shared_ptr<RoleModel> make_reference(const RoleSpec& spec, ProcessRoles& here) {
  return std::make_shared<ReferenceRole>(make_reference_policy(spec, here), reference_partition_group(spec));
}

std::shared_ptr<RoleModel> make_reward(const RoleSpec& spec, ProcessRoles&) {
  SpecReader reader(spec);
  const auto basics = read_spec_fields<RoleBasics>(reader);
  const auto source = read_spec_fields<RewardSource>(reader);
  if (!source.url.empty())
    return std::make_shared<RewardRole>(std::make_shared<RemoteRewardFunction>(source.url, source.remote),
                                        models::load_tokenizer(reader.nonempty("tokenizer", basics.tokenizer)), source.url);
  if (!source.function.empty())
    return std::make_shared<RewardRole>(rl::RewardFunctionRegistry::global().create(source.function),
                                        models::load_tokenizer(reader.nonempty("tokenizer", basics.tokenizer)),
                                        source.function);
  auto options = read_model_options(reader, basics, true);
  options.lora_dim = 0;
  options.gradient_checkpointing = false;
  options.dropout.reset();
  // zero_stage 3: the ranks partition the model's layers (joined at dp_rendezvous).
  auto group = read_spec_fields<DataParallelSpec>(reader).zero_stage == 3 ? data_parallel_group(reader, basics) : nullptr;
  auto reward = load_rank_model(model_dir(reader, basics), options, "reward", group.get());
  return std::make_shared<RewardRole>(reward.model, group, options.compute_dtype, reward.partitioned);
}

std::shared_ptr<RoleModel> make_actor(const RoleSpec& spec, ProcessRoles& here) { return make_policy_role(spec, here); }

}  // namespace

torch::Device rank_device(const torch::Device& configured, int rank, int visible_cuda_devices) {
  if (!configured.is_cuda() || configured.has_index() || visible_cuda_devices < 1) return configured;
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(rank % visible_cuda_devices)};
}

std::shared_ptr<PolicyRole> make_policy_role(const RoleSpec& spec, ProcessRoles& here) {
  SpecReader reader(spec);
  const auto basics = read_spec_fields<RoleBasics>(reader);
  // The same seed on every rank: fresh LoRA adapters start equal.
  torch::manual_seed(basics.seed);
  auto group = data_parallel_group(reader, basics);
  auto built = load_rank_model(model_dir(reader, basics), read_model_options(reader, basics, false), "actor", group.get());
  auto& actor = built.model;
  // log_switches stays on: each generate()'s switch times are a debug line (--log_level debug).
  auto hybrid_options = read_spec_fields<engine::HybridEngineOptions>(reader);
  auto hybrid = std::make_shared<engine::HybridEngine>(actor, hybrid_options);

  const auto settings = read_spec_fields<ActorSpecOptions>(reader);
  const auto tokenizer_dir = reader.nonempty("tokenizer", basics.tokenizer);
  auto ppo = read_spec_fields<PpoTrainingOptions>(reader);
  if (!settings.unsupervised_data.empty() && ppo.unsup_coef > 0)
    ppo.unsupervised = std::make_shared<data::UnsupervisedBlocks>(
        data::make_unsupervised_blocks(data::read_text_corpus(settings.unsupervised_data),
                                       *models::load_tokenizer(tokenizer_dir), settings.unsupervised_block));

  // Generation layout: groups of inference_tp_size actor ranks generate tensor-parallel.
  if (const int tp = settings.inference_tp_size; tp > 1) {
    if (!group) reader.fail("inference_tp_size", std::to_string(tp) + " needs the actor on " + std::to_string(tp) + " ranks or a multiple");
    try {
      hybrid->set_tensor_parallel(group->generation_group(tp));
    } catch (const Error& e) {
      reader.fail("inference_tp_size", e.what());  // e.g. heads that do not split that way
    }
  }
  auto role = std::make_shared<PolicyRole>(hybrid, read_spec_fields<engine::TrainOptions>(reader),
                                           read_spec_fields<models::GenerationOptions>(reader), read_algorithm(reader),
                                           ppo, tokenizer_dir, group, built.partitioned);
  role->set_prompts_per_generation(settings.prompts_per_generation);
  here.add(spec, role);  // a reference of the same model built here next shares its weights
  return role;
}

std::shared_ptr<engine::ReferencePolicy> make_reference_policy(const RoleSpec& spec, const ProcessRoles& here) {
  SpecReader reader(spec);
  const auto basics = read_spec_fields<RoleBasics>(reader);
  const auto model = model_dir(reader, basics);
  const auto built = here.find("actor");
  if (auto actor = std::dynamic_pointer_cast<PolicyRole>(built.model);
      actor && read_spec_fields<RoleBasics>(SpecReader(built.spec)).model == model) {
    auto& hybrid = actor->hybrid();
    if (!hybrid.zero3() || engine::reference_can_share(*hybrid.model()))
      return std::make_shared<engine::ReferencePolicy>(hybrid.model(), hybrid.model_mutex(),
                                                       actor->trainer().options().compute_dtype);
  }
  auto options = read_model_options(reader, basics, false);
  options.lora_dim = 0;  // the reference is the initial policy: adapters start at zero
  auto actor = load_role_model(model, options, "reference");
  return std::make_shared<engine::ReferencePolicy>(actor, nullptr, options.compute_dtype);
}

std::shared_ptr<DataParallel> reference_partition_group(const RoleSpec& spec) {
  SpecReader reader(spec);
  if (read_spec_fields<DataParallelSpec>(reader).zero_stage != 3) return nullptr;
  return data_parallel_group(reader, read_spec_fields<RoleBasics>(reader));
}

RoleSpec actor_role_spec(const Step3Config& config, const models::GenerationOptions& generation, int64_t total_steps) {
  PpoTrainingOptions ppo;
  ppo.enable_ema = config.enable_ema;
  ppo.unsup_coef = config.unsup_coef;
  ppo.unsupervised_batch = config.training_batch_size;
  auto spec = trained_role_spec("step3_actor", "actor", config, config.actor_model, config.actor_lora_dim,
                                config.actor_gradient_checkpointing, config.actor_train, total_steps, ppo);
  engine::HybridEngineOptions hybrid;
  hybrid.release_inference_cache = config.release_inference_cache;
  hybrid.inference_dtype = models::inference_dtype_from_name(config.inference_dtype, "--inference_dtype");
  hybrid.pack_inference_weights = packs_inference_weights(config);
  hybrid.compute_dtype = config.actor_train.compute_dtype;
  write_spec_fields(spec, hybrid);
  write_spec_fields(spec, generation);
  ActorSpecOptions settings;
  if (!config.unsupervised_data.empty() && config.unsup_coef > 0) {  // else the corpus is neither sent nor read
    settings.unsupervised_data = config.unsupervised_data.string();
    settings.unsupervised_block = config.data.lengths.max_prompt_seq_len + generation.max_new_tokens;
  }
  if (config.generation_batches > 1) settings.prompts_per_generation = config.generation_batch_size;
  settings.inference_tp_size = std::max(config.inference_tp_size, 1);
  write_spec_fields(spec, settings);
  return spec;
}

RoleSpec critic_role_spec(const Step3Config& config, int64_t total_steps) {
  return trained_role_spec("step3_critic", "critic", config, config.critic_model, config.critic_lora_dim,
                           config.critic_gradient_checkpointing, config.critic_train, total_steps, PpoTrainingOptions{});
}

RoleSpec reference_role_spec(const Step3Config& config) {
  auto spec = base_spec("step3_reference", "reference", config, config.actor_model);
  RoleModelOptions options;  // a frozen copy: no adapters, no checkpointing
  options.compute_dtype = config.actor_train.compute_dtype;  // computes as the actor does
  write_spec_fields(spec, options);
  return spec;
}

RoleSpec reward_role_spec(const Step3Config& config) {
  std::optional<std::filesystem::path> model;
  if (config.reward_from_model()) model = config.reward_model.empty() ? config.critic_model : config.reward_model;
  auto spec = base_spec("step3_reward", "reward", config, model);
  RewardSource source;
  source.url = config.reward_url;
  source.remote.timeout_seconds = config.reward_timeout;
  source.function = config.reward_function;
  write_spec_fields(spec, source);
  RoleModelOptions options;
  options.compute_dtype = config.critic_train.compute_dtype;
  write_spec_fields(spec, options);
  return spec;
}

RoleFactories step3_role_factories() {
  return {{"step3_actor", make_actor},
          {"step3_critic", make_critic},
          {"step3_reference", make_reference},
          {"step3_reward", make_reward}};
}

}  // namespace troupe::actors
