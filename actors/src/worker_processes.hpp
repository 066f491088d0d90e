#pragma once
/// The worker processes of a separated step-3 topology: started here (or awaited on
/// --listen), joined to this controller's cluster, and which process holds which role
/// and rank. Roles are spawned on them as one rank per process of their set, behind a
/// worker-group handle that fails a request at once when a rank's process is lost.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>

#include "cluster.hpp"
#include <troupe/actors/local_workers.hpp>
#include <troupe/actors/step3_placement.hpp>
#include <troupe/actors/step3_trainer.hpp>

namespace troupe::actors {

class WorkerProcesses {
 public:
  /// How long spawning a role (loading its model in the worker) may take.
  static constexpr std::chrono::minutes spawn_patience{30};

  /// `on_node_lost` hears of every worker process the cluster loses (by node name).
  WorkerProcesses(caf::actor_system& system, const Step3Config& config, const Step3Placement& placement,
                  std::function<void(const std::string&)> on_node_lost);
  ~WorkerProcesses();
  WorkerProcesses(const WorkerProcesses&) = delete;
  WorkerProcesses& operator=(const WorkerProcesses&) = delete;

  /// The role of `spec` as one rank per process of its set, behind one group handle
  /// (which also fails a request at once when a rank's process is lost).
  template <class Handle>
  Handle spawn(RoleSpec spec, Handle (*group)(caf::actor_system&, std::vector<Handle>)) {
    return group(system_, spawn_ranks<Handle>(std::move(spec)));
  }
  /// The role's rank actors in these processes, in rank order (for a role whose
  /// first ranks live in the controller's process: the actor).
  template <class Handle>
  std::vector<Handle> spawn_ranks(RoleSpec spec) {
    const auto& nodes = nodes_of_role_.at(spec.id.role);
    const int first = first_rank_of_role_.at(spec.id.role);
    std::vector<Handle> ranks;
    for (size_t i = 0; i < nodes.size(); ++i) {
      spec.id.rank = first + static_cast<int32_t>(i);
      spec.id.world = first + static_cast<int32_t>(nodes.size());
      ranks.push_back(caf::actor_cast<Handle>(cluster_->spawn_role(nodes[i], spec, spawn_patience)));
    }
    return ranks;
  }
  /// Ranks of the role in its whole group (those in the controller's process included).
  size_t ranks_of(const std::string& role) const {
    return nodes_of_role_.at(role).size() + static_cast<size_t>(first_rank_of_role_.at(role));
  }
  const std::vector<std::string>& descriptions() const { return descriptions_; }

  /// Heartbeats to every worker process from now on (Cluster::start_heartbeats). One
  /// started here that stops answering is killed, so that its roles' requests fail and
  /// the run goes on as when a worker dies (--max_restarts); one that joined with
  /// --listen is reported lost.
  void start_heartbeats(std::chrono::milliseconds timeout);

 private:
  caf::actor_system& system_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<LocalWorkers> workers_;
  std::map<std::string, std::vector<std::string>> nodes_of_role_;
  std::map<std::string, int> first_rank_of_role_;
  std::vector<std::string> descriptions_;
  /// The processes started here, by node name (host:pid); shared with the lost-node hook.
  std::shared_ptr<std::map<std::string, pid_t>> local_pids_ = std::make_shared<std::map<std::string, pid_t>>();
};

}  // namespace troupe::actors
