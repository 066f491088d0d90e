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
};

/// This machine's CPU threads and memory, named by this process (host:pid).
NodeResources local_resources();

/// Joins and serves; once the controller is gone it stops its role actors and ends the
/// process with status 0 (it does not return). Throws troupe::Error when the join fails
/// (unreachable, rejected, or the controller cannot prove the secret).
int run_node_agent(const WorkerOptions& options);

}  // namespace troupe::actors
