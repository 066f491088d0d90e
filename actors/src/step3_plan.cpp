#include <troupe/actors/step3_plan.hpp>

#include <algorithm>

#include "remote_reward_function.hpp"
#include "role_training.hpp"
#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>
#include <troupe/data/collate.hpp>
#include <troupe/data/unsupervised.hpp>
#include <troupe/engine/offload.hpp>
#include <troupe/placement/resources.hpp>
#include <troupe/placement/topology.hpp>
#include <troupe/rl/algorithm_registry.hpp>

namespace troupe::actors {
namespace {

/// Without --topology every role runs here; with it, the placement manager plans it.
Step3Placement plan_placement(const Step3Config& config) {
  if (config.topology.empty()) return {};
  Step3Models models{config.actor_model, config.critic_model,
                     config.reward_from_model() ? (config.reward_model.empty() ? config.critic_model : config.reward_model)
                                                : std::filesystem::path()};
  auto cluster = placement::ClusterResources({placement::detect_local_node("local")});
  if (!config.cluster.empty()) {
    cluster = placement::ClusterResources::load(config.cluster.string());
    if (cluster.nodes().size() != 1 && config.listen.empty())
      throw Error(config.cluster.string() + ": describes " + std::to_string(cluster.nodes().size()) +
                  " nodes, but without --listen step 3 starts its workers on this machine (describe one node, or "
                  "listen for workers started on each node with `troupe worker --join HOST:PORT --node NAME`)");
  }
  auto placement = place_step3_roles(placement::load_topology(config.topology), models, cluster);
  if (placement.spans_nodes)
    log::info("step3: this process holds the actor's rank 0, which the plan puts on node ", placement.controller_node,
              ": run it there");
  log::info(placement.plan_text);
  return placement;
}

}  // namespace

void check_reward_source(const Step3Config& config) {
  if (config.reward_url.empty()) return;
  if (!config.reward_function.empty())
    throw Error("step 3: --reward_url and --reward_function both select the reward; give one");
  if (!config.reward_model.empty())
    throw Error("step 3: --reward_url and --reward_model_name_or_path both select the reward; give one");
  (void)RemoteRewardFunction(config.reward_url, RemoteRewardOptions{config.reward_timeout});
}

bool packs_inference_weights(const Step3Config& config) {
  if (config.inference_weights == "packed") return true;
  if (config.inference_weights != "training")
    throw Error("step 3: --inference_weights must be packed or training, got \"" + config.inference_weights + "\"");
  if (config.inference_dtype != "fp32")
    throw Error("step 3: --inference_weights training generates with the training weights in their own dtype; "
                "--inference_dtype " + config.inference_dtype + " needs --inference_weights packed");
  return false;
}

std::vector<std::vector<int64_t>> Step3Plan::cycle_batches(int64_t epoch) const {
  auto options = sampler;
  options.epoch = epoch;
  return data::distributed_batches(prompts.train.size(), rows_per_cycle, options);
}

int64_t Step3Plan::planned_updates(const Step3Config& config, int ranks, bool mixture_steps) const {
  // A data-parallel rank trains on its share of the rows, so it takes fewer steps.
  const int64_t rank_rows = (rows + ranks - 1) / ranks;
  const int64_t minibatches = (rank_rows + config.training_batch_size - 1) / config.training_batch_size;
  return std::max<int64_t>(1, total_cycles * config.ppo_epochs * minibatches * (mixture_steps ? 2 : 1));
}

Step3Plan plan_step3(const Step3Config& config) {
  if (config.generation_batch_size < 1 || config.training_batch_size < 1 || config.ppo_epochs < 1 ||
      config.generation_batches < 1)
    throw Error("step 3: --per_device_generation_batch_size, --per_device_training_batch_size, --ppo_epochs and "
                "--generation_batches must be at least 1");
  check_reward_source(config);
  packs_inference_weights(config);
  Step3Plan plan;
  plan.algorithm = rl::AlgorithmRegistry::global().create(config.algorithm, config.algorithm_options);
  check_micro_batching(config.max_tokens_per_microbatch, *plan.algorithm);
  plan.placement = plan_placement(config);
  auto offloads = plan.placement.offloads;
  if (config.offload) offloads.insert(offloads.begin(), "--offload (actor, critic)");
  for (const auto& what : offloads) log::warn("step 3: ", engine::offload_note(what, config.device));

  const auto tokenizer_dir = config.data.tokenizer_dir.empty() ? config.actor_model : config.data.tokenizer_dir;
  plan.tokenizer = models::load_tokenizer(tokenizer_dir);
  plan.pad_id = data::pad_token_id(*plan.tokenizer);
  plan.generation = config.generation;
  plan.generation.pad_token_id = plan.pad_id;
  if (plan.generation.eos_token_ids.empty() && plan.tokenizer->eos_token_id())
    plan.generation.eos_token_ids = {*plan.tokenizer->eos_token_id()};

  plan.prompts = data::load_phase_data(config.data, 3);
  if (plan.prompts.train.size() == 0)
    throw Error("step 3: no training prompts (check --data_path, --data_split and --max_prompt_seq_len)");
  plan.mixture = !config.unsupervised_data.empty() && config.unsup_coef > 0;
  // The actor reads the mixture corpus once it is built; reading it here too makes a bad
  // path or line fail before any model loads.
  if (plan.mixture) (void)data::read_text_corpus(config.unsupervised_data);
  if (!config.eval_function.empty()) plan.gold = rl::RewardFunctionRegistry::global().create(config.eval_function);

  // Per device, as DeepSpeed-Chat counts it: each actor rank generates this many prompts.
  plan.rows_per_cycle = config.generation_batch_size * config.generation_batches * plan.placement.actor_ranks;
  plan.sampler.seed = config.seed;
  const int64_t cycles_per_epoch = static_cast<int64_t>(plan.cycle_batches(0).size());
  plan.total_cycles = config.epochs * cycles_per_epoch;
  if (config.max_steps > 0) plan.total_cycles = std::min(plan.total_cycles, config.max_steps);
  plan.rows = plan.rows_per_cycle * plan.algorithm->samples_per_prompt();
  return plan;
}

}  // namespace troupe::actors
