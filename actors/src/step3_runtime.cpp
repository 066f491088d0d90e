#include <troupe/actors/step3_runtime.hpp>


#include <caf/all.hpp>

#include "host_port.hpp"
#include "step3_role_specs.hpp"
#include "step3_roles.hpp"
#include "ucx_ticket_store.hpp"
#include "worker_group.hpp"
#include "worker_processes.hpp"
#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>
#include <troupe/engine/hybrid_memory.hpp>

#include <troupe/actors/role_request.hpp>

#include "step3_spec_tables.hpp"

namespace troupe::actors {
namespace {

std::string join(const std::vector<std::string>& names, const char* separator) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : separator) + name;
  return text;
}

}  // namespace

void Step3Runtime::join_group(RoleSpec& spec, int ranks, int zero_stage, int64_t reduce_bucket_size) {
  if (ranks <= 1) return;
  // On loopback, or where --listen lets workers of other machines in.
  const auto host = config_.listen.empty() ? std::string("127.0.0.1") : parse_host_port(config_.listen, "--listen", true).host;
  auto& point = rendezvous_[spec.id.role];
  point = std::make_unique<Rendezvous>(host);
  DataParallelSpec group;
  group.rendezvous = point->address();
  group.collectives = config_.dp_collectives;
  group.zero_stage = zero_stage;
  group.reduce_bucket_size = reduce_bucket_size;
  const auto prefetch = plan_.placement.zero3_prefetch_layers.find(spec.id.role);
  if (prefetch != plan_.placement.zero3_prefetch_layers.end()) group.zero3_prefetch_layers = prefetch->second;
  group.collective_timeout_seconds = config_.collective_timeout_seconds;
  write_spec_fields(spec, group);
  spec.id.world = ranks;  // rank 0 here; WorkerProcesses numbers the others
}

template <class Handle, class Group>
Handle Step3Runtime::with_other_ranks(Handle here, const RoleSpec& spec, Group group) {
  if (plan_.placement.ranks(spec.id.role) <= 1) return here;
  auto ranks = workers_->template spawn_ranks<Handle>(spec);
  ranks.insert(ranks.begin(), here);
  ranks_here_.push_back(caf::actor_cast<caf::actor>(here));
  return group(system_, std::move(ranks));
}

template <class Handle>
Handle Step3Runtime::start_from_spec(const RoleSpec& spec, Handle (*spawn)(caf::actor_system&, RoleContext),
                                     Handle (*group)(caf::actor_system&, std::vector<Handle>)) {
  const auto& role = spec.id.role;
  // One-rank groups around remote roles: a lost worker fails the request at once.
  if (!plan_.placement.with_actor(role)) return workers_->spawn(spec, group);
  auto model = step3_role_factories().at(spec.factory)(spec, process_roles_);
  descriptions_.push_back(model->describe());
  here_.push_back(role);
  return with_other_ranks(spawn(system_, local_context(role, model)), spec, group);
}

RoleContext Step3Runtime::local_context(const std::string& role, std::shared_ptr<RoleModel> model) const {
  return RoleContext{RoleId{role, 0, plan_.placement.ranks(role)}, std::move(model), store_};
}

Step3Runtime::Step3Runtime(const Step3Config& config, const Step3Plan& plan) : config_(config), plan_(plan) {
  const auto& placement = plan.placement;
  // The actor: rank 0 in this process, generating in the layout the plan settles on.
  const int generation_tp = config.inference_tp_size > 0 ? config.inference_tp_size : placement.actor_inference_tp;
  if (placement.actor_ranks % generation_tp != 0)
    throw Error("step 3: --inference_tp_size " + std::to_string(generation_tp) + " does not divide the actor's " +
                std::to_string(placement.actor_ranks) + " rank(s) (roles.actor.devices in --topology)");
  auto actor_config = config;
  actor_config.inference_tp_size = generation_tp;
  auto actor_spec =
      actor_role_spec(actor_config, plan.generation, plan.planned_updates(config, placement.actor_ranks, plan.mixture));
  join_group(actor_spec, placement.actor_ranks, placement.actor_zero_stage, placement.actor_reduce_bucket_size);
  policy_role_ = make_policy_role(actor_spec, process_roles_);
  hybrid_ = std::shared_ptr<engine::HybridEngine>(policy_role_, &policy_role_->hybrid());
  here_ = {"actor"};
  descriptions_ = {policy_role_->describe()};
  if (config.async_rollout) {
    // Built from the actor's spec right after the actor: make_policy_role seeds the global
    // generator first, so the roles built next draw exactly what they draw without it.
    // Neither EMA nor mixture data: the copy never trains.
    auto rollout_config = actor_config;
    rollout_config.enable_ema = false;
    rollout_config.unsupervised_data.clear();
    ProcessRoles apart;  // not this process's actor: no reference shares its weights
    rollout_role_ = make_policy_role(
        actor_role_spec(rollout_config, plan.generation, plan.planned_updates(config, placement.actor_ranks, plan.mixture)),
        apart);
    descriptions_.push_back("rollout copy of the actor (--async_rollout)");
  }

  // The other roles here or in worker processes; batches between processes over UCX.
  const bool separated = placement.worker_processes() > 0;
  if (separated) store_ = ucx_store_ = std::make_shared<UcxTicketStore>();
  else store_ = std::make_shared<InProcessTicketStore>();
  // A lost worker ends pulls from it at once instead of at the transfer timeout.
  if (separated)
    workers_ = std::make_unique<WorkerProcesses>(system_, config, placement,
                                                 [ucx = ucx_store_, lost = lost_](const std::string& node) {
                                                   ucx->mark_node_lost(node);
                                                   std::lock_guard<std::mutex> lock(lost->mutex);
                                                   lost->nodes.push_back(node);
                                                 });

  roles_.policy = with_other_ranks(spawn_policy(system_, local_context("actor", policy_role_)), actor_spec, spawn_policy_group);
  start_reference();
  start_critic();
  start_reward();
  if (workers_ && config.heartbeat_timeout_seconds > 0)
    workers_->start_heartbeats(std::chrono::milliseconds(static_cast<int64_t>(config.heartbeat_timeout_seconds * 1000)));

  placement_ = join(here_, "+") + " in this process";
  if (workers_)
    for (const auto& text : workers_->descriptions()) placement_ += "; " + text;
  descriptions_.push_back(reference_memory_);
  log::info("step3: ", join(descriptions_, "; "));
  log::info("step3: placement: ", placement_, separated ? " (batches between processes over UCX)" : "");
}

void Step3Runtime::start_reference() {
  auto spec = reference_role_spec(config_);
  const int ranks = plan_.placement.ranks("reference");
  if (plan_.placement.reference_zero_stage == 3) join_group(spec, ranks, 3);
  if (!plan_.placement.with_actor("reference")) {
    // One-rank groups around remote roles: a lost worker fails the request at once.
    roles_.reference = workers_->spawn(spec, spawn_reference_group);
    reference_memory_ = "reference: a frozen copy of the actor's initial weights in its worker process";
    if (ranks > 1 && plan_.placement.reference_zero_stage == 3) reference_memory_ += ", ZeRO-3 over its ranks";
    return;
  }
  auto reference = make_reference_policy(spec, process_roles_);
  if (config_.offload_reference_model && !reference->offload_to(torch::kCPU))
    log::warn("step3: --offload_reference_model: the reference shares the actor's weights; nothing to offload");
  auto role = std::make_shared<ReferenceRole>(reference, reference_partition_group(spec));
  if (role->partitioned()) {
    reference_memory_ = role->describe();
  } else {
    reference_memory_ = reference->memory_summary();
    if (ranks > 1) reference_memory_ += " (the same on every rank)";
    if (ranks > 1 && plan_.placement.reference_zero_stage == 3)
      reference_memory_ += "; roles.reference.zero_stage 3 leaves it so: it shares the actor's weights";
  }
  roles_.reference = with_other_ranks(spawn_reference(system_, local_context("reference", role)), spec,
                                      spawn_reference_group);
  here_.push_back("reference");
}

void Step3Runtime::start_critic() {
  has_critic_ = plan_.algorithm->roles().critic;
  if (!has_critic_) {
    auto none = std::make_shared<NoCriticRole>();
    descriptions_.push_back(none->describe());
    roles_.critic = actors::spawn_critic(system_, RoleContext{RoleId{"critic", 0, 1}, none, store_});
    here_.push_back("critic");
    return;
  }
  const int ranks = plan_.placement.ranks("critic");
  auto spec = critic_role_spec(config_, plan_.planned_updates(config_, ranks, false));
  join_group(spec, ranks, plan_.placement.critic_zero_stage, plan_.placement.critic_reduce_bucket_size);
  roles_.critic = start_from_spec(spec, actors::spawn_critic, spawn_critic_group);
}

void Step3Runtime::start_reward() {
  auto spec = reward_role_spec(config_);
  if (config_.reward_from_model() && plan_.placement.reward_zero_stage == 3)
    join_group(spec, plan_.placement.ranks("reward"), plan_.placement.reward_zero_stage);
  roles_.reward = start_from_spec(spec, actors::spawn_reward, spawn_reward_group);
}

void Step3Runtime::save(const std::filesystem::path& dir) {
  // Through the group: under ZeRO stage 3 every rank takes part in gathering the weights.
  ask<caf::ok_atom>(system_, roles_.policy, "saving the actor", save_atom::value,
                    std::filesystem::absolute(dir / "actor").string());
  if (has_critic_)
    ask<caf::ok_atom>(system_, roles_.critic, "saving the critic", save_atom::value,
                      std::filesystem::absolute(dir / "critic").string());
}

std::vector<std::string> Step3Runtime::lost_nodes() const {
  std::lock_guard<std::mutex> lock(lost_->mutex);
  return lost_->nodes;
}

int64_t Step3Runtime::remote_fetches() const { return ucx_store_ ? static_cast<int64_t>(ucx_store_->pulled()) : 0; }

Step3Runtime::~Step3Runtime() {
  // The role actors end with this run even where a peer process still references one:
  // the actor system's destructor waits for every actor.
  std::vector<caf::actor> handles = ranks_here_;
  for (const auto& handle : {caf::actor_cast<caf::actor>(roles_.policy), caf::actor_cast<caf::actor>(roles_.critic),
                             caf::actor_cast<caf::actor>(roles_.reference), caf::actor_cast<caf::actor>(roles_.reward)})
    handles.push_back(handle);
  for (const auto& handle : handles)
    if (handle) caf::anon_send_exit(handle, caf::exit_reason::user_shutdown);
}

}  // namespace troupe::actors
