#pragma once
/// The worker side: a node agent process joins a controller, proves the secret, checks
/// the controller's proof, offers its resources and spawns role actors on request until
/// the controller goes away.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include <troupe/actors/role_factories.hpp>

namespace troupe::actors {

struct WorkerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string secret;
  RoleFactories factories;
  std::function<void(const std::string&)> log;  ///< default: stderr
  /// Where files the controller sends (this node lacks them) are kept; empty =
  /// StagingArea::default_root() ($TROUPE_STAGE_DIR or ~/.cache/troupe/staged).
  std::filesystem::path stage_dir;
  /// `troupe worker --rejoin SECONDS`: keep trying to reach the controller for this long
  /// (at start, and again once the controller went away, as it does when it restarts a
  /// run after a lost worker: the process then starts itself anew to join the restarted
  /// run). 0 = one attempt, and exit when the controller is gone.
  double rejoin_seconds = 0;
  /// `troupe worker --node NAME`: the controller's --cluster node this process runs on;
  /// a run whose cluster has several nodes gives it the ranks its plan puts there.
  std::string cluster_node;
};

/// This machine's CPU threads and memory, named by this process (host:pid).
NodeResources local_resources();

/// Joins and serves; once the controller is gone it stops its role actors and ends the
/// process with status 0, or with rejoin_seconds starts the process anew to join again
/// (it does not return). Throws troupe::Error when the join fails (unreachable within
/// rejoin_seconds, rejected, or the controller cannot prove the secret).
int run_node_agent(const WorkerOptions& options);

}  // namespace troupe::actors
