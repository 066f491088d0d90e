#pragma once
/// The controller's side of a cluster: publishes the registrar, admits node agents that
/// prove the shared secret (and logs those that do not), spawns role actors on nodes,
/// and watches every remote actor: a lost node or role is reported in one line naming
/// the role, the rank and the node.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <troupe/actors/messages.hpp>

namespace troupe::actors {

struct ClusterOptions {
  std::string secret;              ///< required, non-empty
  std::string host = "127.0.0.1";  ///< listen address
  uint16_t port = 0;               ///< 0 = any free port
  /// Where report lines go (default: troupe's log, at warn for a node rejected or lost).
  std::function<void(const std::string&)> log;
  /// Called with the node's name when a joined node's agent is lost.
  std::function<void(const std::string&)> on_node_lost;
};

class Cluster {
 public:
  Cluster(caf::actor_system& system, ClusterOptions options);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  /// The port agents join (`troupe worker --join host:port`).
  uint16_t port() const { return port_; }
  /// Blocks until `count` nodes joined; throws troupe::Error after `timeout`.
  std::vector<NodeResources> wait_for_nodes(size_t count, std::chrono::milliseconds timeout);
  /// The nodes admitted so far.
  std::vector<NodeResources> nodes() const;
  /// Asks the agent of `node` to spawn a role; the actor is watched from now on.
  caf::actor spawn_role(const std::string& node, const RoleSpec& spec, std::chrono::milliseconds timeout);
  /// Every report line so far: lost roles and nodes, rejected joins.
  std::vector<std::string> reports() const;
  /// From now on, asks every joined node's agent every `interval` whether it is there.
  /// A node that does not answer within `timeout` (a hung or stopped process: its
  /// connection stays open, so nothing else notices) is reported lost, as a node whose
  /// connection dropped is, and `on_node_lost` hears of it. Call it once the roles are
  /// spawned: an agent building a role answers nothing until it is done.
  void start_heartbeats(std::chrono::milliseconds interval, std::chrono::milliseconds timeout);
  /// Blocks until a report line containing `needle` appears; false after `timeout`.
  bool wait_for_report(const std::string& needle, std::chrono::milliseconds timeout) const;

  struct State;

 private:
  caf::actor_system& system_;
  std::shared_ptr<State> state_;
  caf::actor registrar_;
  caf::actor watcher_;
  uint16_t port_ = 0;
};

}  // namespace troupe::actors
