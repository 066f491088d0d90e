/// Worker processes of a separated step-3 topology: start or await, join, assign ranks.
#include "worker_processes.hpp"

#include <algorithm>
#include <csignal>

#include "host_port.hpp"
#include "secret.hpp"
#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>

namespace troupe::actors {
namespace {

/// The joined workers in the order of the plan's worker ranks (every set's ranks, set by
/// set), each on the cluster node the plan puts that rank on, as the worker reported it
/// (`troupe worker --node`). Throws troupe::Error naming the rank and the node when the
/// joined workers do not fit the plan.
std::vector<std::string> match_to_plan(const std::vector<NodeResources>& joined, const Step3Placement& placement) {
  std::string who;  // every joined worker and its node, for the errors
  for (const auto& worker : joined)
    who += (who.empty() ? "" : ", ") + worker.node + " on " + (worker.cluster_node.empty() ? "no --node" : worker.cluster_node);
  for (const auto& worker : joined)
    if (worker.cluster_node.empty())
      throw Error("step 3: worker " + worker.node + " joined without --node, but the --cluster file has several nodes: "
                  "start each worker with `troupe worker --join HOST:PORT --node NAME` naming its node (joined: " + who + ")");
  std::vector<bool> taken(joined.size(), false);
  std::vector<std::string> names;
  for (const auto& set : placement.worker_sets) {
    std::string roles;
    for (const auto& role : set.roles) roles += (roles.empty() ? "" : "+") + role;
    for (int i = 0; i < set.ranks; ++i) {
      const auto& planned = set.nodes.at(static_cast<size_t>(i));
      size_t w = 0;
      while (w < joined.size() && (taken[w] || joined[w].cluster_node != planned)) ++w;
      if (w == joined.size())
        throw Error("step 3: the plan puts " + roles + " rank " + std::to_string(set.first_rank + i) + " on node " +
                    planned + ", but no other worker joined with --node " + planned + " (joined: " + who + ")");
      taken[w] = true;
      names.push_back(joined[w].node);
    }
  }
  return names;
}

}  // namespace

WorkerProcesses::WorkerProcesses(caf::actor_system& system, const Step3Config& config, const Step3Placement& placement,
                                 std::function<void(const std::string&)> on_node_lost)
    : system_(system) {
  const auto count = static_cast<size_t>(placement.worker_processes());
  ClusterOptions options;
  // A process of ours that went quiet (heartbeats) is killed, so its connection drops and
  // every request to its roles fails as when it dies on its own.
  options.on_node_lost = [pids = local_pids_, on_node_lost = std::move(on_node_lost)](const std::string& node) {
    if (const auto found = pids->find(node); found != pids->end()) ::kill(found->second, SIGKILL);
    if (on_node_lost) on_node_lost(node);
  };
  std::vector<std::string> names;
  if (config.listen.empty()) {
    options.secret = to_hex(random_nonce());
    cluster_ = std::make_unique<Cluster>(system, options);
    const auto program = config.worker_program.empty() ? this_program() : config.worker_program;
    workers_ = std::make_unique<LocalWorkers>(program, cluster_->port(), options.secret, count);
    for (const auto& node : cluster_->wait_for_nodes(count, std::chrono::minutes(2))) names.push_back(node.node);
    // Ranks in the order the processes were started.
    std::vector<std::string> ordered;
    for (const pid_t pid : workers_->pids()) {
      auto node = node_of_process(names, pid);
      if (node.empty()) throw Error("step 3: worker process " + std::to_string(pid) + " did not join");
      ordered.push_back(node);
      (*local_pids_)[node] = pid;
    }
    names = ordered;
  } else {
    if (config.secret.empty()) throw Error("--listen needs a shared secret (TROUPE_SECRET) for the workers to prove");
    const auto listen = parse_host_port(config.listen, "--listen", true);
    options.host = listen.host;
    options.port = listen.port;
    options.secret = config.secret;
    cluster_ = std::make_unique<Cluster>(system, options);
    log::info("step3: waiting for ", count, " worker process(es): run `troupe worker --join ", options.host, ":",
              cluster_->port(), "` with TROUPE_SECRET set, on this or another machine");
    const auto wait = std::chrono::milliseconds(static_cast<int64_t>(config.listen_wait_seconds * 1000));
    const auto joined = cluster_->wait_for_nodes(count, wait);
    if (placement.spans_nodes) {
      names = match_to_plan(joined, placement);
    } else {  // one machine: ranks in the order the workers joined
      for (const auto& node : joined) {
        if (!node.cluster_node.empty() && node.cluster_node != placement.controller_node)
          throw Error("step 3: worker " + node.node + " joined with --node " + node.cluster_node +
                      ", but this run plans one node, " + placement.controller_node +
                      " (give the controller a --cluster file that names every node)");
        names.push_back(node.node);
      }
    }
  }
  size_t next = 0;
  for (const auto& set : placement.worker_sets) {
    std::vector<std::string> nodes;
    for (int rank = 0; rank < set.ranks; ++rank) {
      const auto& node = names.at(next++);
      for (const auto& role : set.roles) {
        nodes_of_role_[role].push_back(node);
        first_rank_of_role_[role] = set.first_rank;
      }
      nodes.push_back(node);
    }
    std::string text;
    for (const auto& role : set.roles) text += (text.empty() ? "" : "+") + role;
    if (set.first_rank > 0)
      text += set.ranks == 1 ? " rank " + std::to_string(set.first_rank) + " in worker process "
                             : " ranks " + std::to_string(set.first_rank) + "-" +
                                   std::to_string(set.first_rank + set.ranks - 1) + " in data-parallel worker processes ";
    else
      text += set.ranks == 1 ? " in worker process " : " in " + std::to_string(set.ranks) + " data-parallel worker processes ";
    for (size_t i = 0; i < nodes.size(); ++i)
      text += (i ? ", " : "") + nodes[i] + (placement.spans_nodes ? " (node " + set.nodes[i] + ")" : "");
    descriptions_.push_back(text);
  }
}

void WorkerProcesses::start_heartbeats(std::chrono::milliseconds timeout) {
  // Asked several times per timeout, so a quiet process is noticed within about one.
  const auto interval = std::max(std::chrono::milliseconds(100), std::min(timeout / 4, std::chrono::milliseconds(5000)));
  cluster_->start_heartbeats(interval, timeout);
}

WorkerProcesses::~WorkerProcesses() {
  cluster_.reset();  // the workers see the controller go and exit on their own
  workers_.reset();  // (the ones started here are stopped if they do not)
}

}  // namespace troupe::actors
