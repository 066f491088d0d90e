#pragma once
/// Step 3, second stage: the four role actors running where the plan puts them. The
/// actor's rank 0 is this process's hybrid engine; the reference shares its base when
/// they are together; other roles run here or in worker processes, data-parallel ranks
/// behind one group handle. Destroying the runtime stops every role.
///
/// It is the API for apps that drive a loop of their own: plan_step3, a Step3Runtime,
/// then generate / score / train requests to roles() with tickets through store(), as
/// run_step3's PPO loop does (apps/examples/own_loop/main.cpp).
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include <troupe/actors/controller.hpp>
#include <troupe/actors/data_parallel.hpp>
#include <troupe/actors/process_roles.hpp>
#include <troupe/actors/role_actors.hpp>
#include <troupe/actors/step3_trainer.hpp>
#include <troupe/actors/system_config.hpp>
#include <troupe/actors/ticket_store.hpp>
#include <troupe/engine/hybrid_engine.hpp>

#include <troupe/actors/step3_plan.hpp>

namespace troupe::actors {

class PolicyRole;
class UcxTicketStore;
class WorkerProcesses;

class Step3Runtime {
 public:
  Step3Runtime(const Step3Config& config, const Step3Plan& plan);
  ~Step3Runtime();
  Step3Runtime(const Step3Runtime&) = delete;
  Step3Runtime& operator=(const Step3Runtime&) = delete;

  caf::actor_system& system() { return system_; }
  const StepThreeRoles& roles() const { return roles_; }
  const std::shared_ptr<TicketStore>& store() const { return store_; }
  /// The actor's hybrid engine (rank 0, in this process).
  engine::HybridEngine& hybrid() { return *hybrid_; }
  /// The actor's role (rank 0, in this process).
  const std::shared_ptr<PolicyRole>& policy_role() const { return policy_role_; }
  /// With --async_rollout, the actor's rollout copy: a second PolicyRole on its own
  /// model, built from the same spec (so the same weights and generation), that only
  /// generates (async_rollout.hpp); null otherwise.
  const std::shared_ptr<PolicyRole>& rollout_role() const { return rollout_role_; }
  /// Whether the algorithm trains a critic (PPO does; GRPO has a stand-in).
  bool has_critic() const { return has_critic_; }
  /// "actor+reference in this process; critic+reward in worker process host:pid".
  const std::string& placement() const { return placement_; }
  /// What the reference shares or holds.
  const std::string& reference_memory() const { return reference_memory_; }
  /// Writes actor/ (and actor_ema/) and critic/ under `dir`.
  void save(const std::filesystem::path& dir);
  /// Batches this process pulled from workers over UCX.
  int64_t remote_fetches() const;
  /// The worker nodes this runtime lost (a process that died or became unreachable).
  std::vector<std::string> lost_nodes() const;

 private:
  /// A data-parallel role's ranks meet at a rendezvous this process hosts.
  void join_group(RoleSpec& spec, int ranks, int zero_stage,
                  int64_t reduce_bucket_size = engine::kDefaultReduceBucketElements);
  /// `here` alone, or first of the role's data-parallel ranks, the others spawned in
  /// worker processes, all behind one `group` handle.
  template <class Handle, class Group>
  Handle with_other_ranks(Handle here, const RoleSpec& spec, Group group);
  /// The role `spec` describes: built here by its factory (with its other ranks in
  /// workers), or spawned in the worker process the plan gives it.
  template <class Handle>
  Handle start_from_spec(const RoleSpec& spec, Handle (*spawn)(caf::actor_system&, RoleContext),
                         Handle (*group)(caf::actor_system&, std::vector<Handle>));
  RoleContext local_context(const std::string& role, std::shared_ptr<RoleModel> model) const;
  void start_reference();
  void start_critic();
  void start_reward();

  const Step3Config& config_;
  const Step3Plan& plan_;
  std::map<std::string, std::unique_ptr<Rendezvous>> rendezvous_;
  /// The roles built in this process (a reference here shares the actor's weights).
  ProcessRoles process_roles_;
  std::shared_ptr<PolicyRole> policy_role_;
  std::shared_ptr<PolicyRole> rollout_role_;
  std::shared_ptr<engine::HybridEngine> hybrid_;  // lives as long as the role
  SystemConfig system_config_;
  caf::actor_system system_{system_config_};
  std::shared_ptr<UcxTicketStore> ucx_store_;
  struct LostNodes {
    mutable std::mutex mutex;
    std::vector<std::string> nodes;
  };
  std::shared_ptr<LostNodes> lost_ = std::make_shared<LostNodes>();  // written by the cluster's actor
  std::shared_ptr<TicketStore> store_;
  std::unique_ptr<WorkerProcesses> workers_;
  StepThreeRoles roles_;
  /// Rank 0 of data-parallel roles, behind their groups: stopped with the roles.
  std::vector<caf::actor> ranks_here_;
  bool has_critic_ = false;
  std::vector<std::string> here_, descriptions_;
  std::string placement_, reference_memory_;
};

}  // namespace troupe::actors
