/// The controller's side of a cluster: registrar, admission, spawning, watching.
#include "cluster.hpp"

#include "file_staging.hpp"

#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "node_agent.hpp"
#include "registrar_actor.hpp"
#include "secret.hpp"
#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>

namespace troupe::actors {

using watch_atom = caf::atom_constant<caf::atom("watch")>;
using beat_atom = caf::atom_constant<caf::atom("beat")>;          // the watcher: ask one node now
using start_beats_atom = caf::atom_constant<caf::atom("startbeat")>;  // the watcher: ask every node from now on

/// Shared by the registrar, the watcher and the Cluster's blocking calls.
struct Cluster::State {
  struct Session {
    Bytes agent_nonce;
    bool verified = false;
    NodeResources resources;
  };
  std::string secret;
  std::function<void(const std::string&)> custom_log;  ///< ClusterOptions::log; empty: troupe's log
  std::function<void(const std::string&)> on_node_lost;
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  std::map<Bytes, Session> sessions;  // by controller nonce
  std::vector<NodeResources> nodes;
  std::map<std::string, caf::actor> agents;  // by node name
  std::vector<std::string> reports;

  void report(const std::string& line) {
    {
      std::lock_guard lock(mutex);
      reports.push_back(line);
    }
    changed.notify_all();
    if (custom_log) custom_log(line);
    else log::warn(line);  // a node rejected or lost
  }

  void note(const std::string& line) const {
    if (custom_log) custom_log(line);
    else log::info(line);
  }
};

namespace {

using State = Cluster::State;

/// "2.5 s" for 2500 ms.
std::string format_seconds(int64_t milliseconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g s", static_cast<double>(milliseconds) / 1000.0);
  return text;
}

RegistrarActor::behavior_type registrar(RegistrarActor::pointer self, std::shared_ptr<State> state,
                                        caf::actor watcher) {
  return {
      [=](hello_atom, const Bytes& agent_nonce) -> caf::result<Bytes> {
        if (agent_nonce.size() < 16) return caf::make_error(caf::sec::runtime_error, "join: agent nonce too short");
        auto nonce = random_nonce();
        std::lock_guard lock(state->mutex);
        state->sessions[nonce] = State::Session{agent_nonce, false, {}};
        return nonce;
      },
      [=](join_atom, const JoinRequest& request) -> caf::result<Bytes> {
        std::unique_lock lock(state->mutex);
        auto session = state->sessions.find(request.controller_nonce);
        const bool known = session != state->sessions.end() && same_bytes(session->second.agent_nonce, request.agent_nonce);
        const bool proven =
            known && same_bytes(request.proof, secret_proof(state->secret, "agent", request.agent_nonce,
                                                            request.controller_nonce));
        if (!proven) {
          if (session != state->sessions.end()) state->sessions.erase(session);  // one try per nonce
          lock.unlock();
          const auto why = known ? "wrong shared secret" : "unknown or reused challenge";
          state->report("troupe: rejected node " + request.resources.node + ": " + why);
          return caf::make_error(caf::sec::runtime_error, std::string("join rejected: ") + why);
        }
        session->second.verified = true;
        session->second.resources = request.resources;
        return secret_proof(state->secret, "controller", request.agent_nonce, request.controller_nonce);
      },
      [=](register_atom, const Bytes& controller_nonce, const caf::actor& agent) -> caf::result<caf::ok_atom> {
        std::unique_lock lock(state->mutex);
        auto session = state->sessions.find(controller_nonce);
        if (session == state->sessions.end() || !session->second.verified || !agent)
          return caf::make_error(caf::sec::runtime_error, "register: no verified join for this challenge");
        auto resources = session->second.resources;
        state->sessions.erase(session);
        state->nodes.push_back(resources);
        state->agents[resources.node] = agent;
        lock.unlock();
        state->changed.notify_all();
        log::debug("troupe: node ", resources.node, " joined (", resources.cpu_threads, " CPU threads, ",
                   resources.memory_bytes >> 20, " MiB)");
        caf::anon_send(watcher, watch_atom::value, agent, "node " + resources.node);
        return caf::ok_atom::value;
      }};
}

/// Monitors remote actors and reports each one that goes down, with its label; once
/// heartbeats start, also each node agent that stops answering.
caf::behavior watcher(caf::event_based_actor* self, std::shared_ptr<State> state) {
  auto labels = std::make_shared<std::map<caf::actor_addr, std::string>>();
  auto agents = std::make_shared<std::vector<caf::actor>>();  // the nodes' agents, to ask
  struct Beats {
    std::chrono::milliseconds interval{0};
    caf::duration timeout;
    int64_t timeout_ms = 0;
  };
  auto beats = std::make_shared<Beats>();  // unset until heartbeats start
  const std::string node_prefix = "node ";
  auto lose = [=](const caf::actor_addr& who, const std::string& why) {
    auto found = labels->find(who);
    if (found == labels->end()) return;  // reported already
    const auto label = found->second;
    labels->erase(found);
    state->report("troupe: lost " + label + " (" + why + ")");
    if (state->on_node_lost && label.rfind(node_prefix, 0) == 0) state->on_node_lost(label.substr(node_prefix.size()));
  };
  self->set_down_handler([=](caf::down_msg& down) { lose(down.source, self->system().render(down.reason)); });
  return {[=](watch_atom, const caf::actor& whom, const std::string& label) {
            (*labels)[whom.address()] = label;
            self->monitor(whom);
            if (label.rfind(node_prefix, 0) == 0) agents->push_back(whom);
          },
          [=](start_beats_atom, int64_t interval_ms, int64_t timeout_ms) {
            const bool started = beats->timeout_ms > 0;
            *beats = {std::chrono::milliseconds(interval_ms), caf::duration{std::chrono::milliseconds(timeout_ms)},
                      timeout_ms};
            if (!started)
              for (const auto& agent : *agents) self->send(self, beat_atom::value, agent);
          },
          [=](beat_atom, const caf::actor& agent) {
            if (!labels->count(agent.address())) return;  // lost already: stop asking
            self->request(agent, beats->timeout, heartbeat_atom::value)
                .then([=](caf::ok_atom) { self->delayed_send(self, beats->interval, beat_atom::value, agent); },
                      [=](caf::error& error) {
                        if (error == caf::sec::request_timeout)
                          lose(agent.address(), "no heartbeat answer within " + format_seconds(beats->timeout_ms) +
                                                    ": the process is hung or stopped");
                        else
                          lose(agent.address(), "heartbeat failed: " + self->system().render(error));
                      });
          }};
}

}  // namespace

Cluster::Cluster(caf::actor_system& system, ClusterOptions options) : system_(system), state_(std::make_shared<State>()) {
  if (options.secret.empty()) throw Error("cluster: a shared secret is required (--secret)");
  state_->secret = options.secret;
  state_->on_node_lost = options.on_node_lost;
  state_->custom_log = options.log;
  watcher_ = system_.spawn(watcher, state_);
  registrar_ = caf::actor_cast<caf::actor>(system_.spawn(registrar, state_, watcher_));
  // A fixed port (--listen) is reused at once by a run restarted after a lost worker.
  auto port = system_.middleman().publish(registrar_, options.port, options.host.c_str(), /*reuse=*/options.port != 0);
  if (!port)
    throw Error("cluster: cannot listen on " + options.host + ":" + std::to_string(options.port) + ": " +
                system_.render(port.error()));
  port_ = *port;
}

Cluster::~Cluster() {
  system_.middleman().unpublish(registrar_, port_);
  caf::anon_send_exit(registrar_, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(watcher_, caf::exit_reason::user_shutdown);
}

void Cluster::start_heartbeats(std::chrono::milliseconds interval, std::chrono::milliseconds timeout) {
  caf::anon_send(watcher_, start_beats_atom::value, static_cast<int64_t>(interval.count()),
                 static_cast<int64_t>(timeout.count()));
}

std::vector<NodeResources> Cluster::wait_for_nodes(size_t count, std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mutex);
  if (!state_->changed.wait_for(lock, timeout, [&] { return state_->nodes.size() >= count; }))
    throw Error("cluster: " + std::to_string(state_->nodes.size()) + " of " + std::to_string(count) +
                " nodes joined within " + std::to_string(timeout.count()) + " ms");
  return state_->nodes;
}

std::vector<NodeResources> Cluster::nodes() const {
  std::lock_guard lock(state_->mutex);
  return state_->nodes;
}

caf::actor Cluster::spawn_role(const std::string& node, const RoleSpec& spec, std::chrono::milliseconds timeout) {
  caf::actor agent;
  {
    std::lock_guard lock(state_->mutex);
    auto found = state_->agents.find(node);
    if (found == state_->agents.end()) throw Error("cluster: no node " + node + " has joined");
    agent = found->second;
  }
  caf::scoped_actor self{system_};
  caf::actor role;
  std::string failure;
  auto fail = [&](caf::error& error) { failure = system_.render(error); };
  const auto node_agent = caf::actor_cast<NodeAgentActor>(agent);
  // Files the spec names that the node lacks (no shared file system) go first.
  const auto offer = staging_request(spec);
  StageReply needed;
  if (!offer.paths.empty())
    self->request(node_agent, caf::duration{timeout}, stage_atom::value, offer)
        .receive([&](StageReply& reply) { needed = std::move(reply); }, fail);
  uint64_t bytes = 0;
  const auto started = std::chrono::steady_clock::now();
  for (const auto& path : needed.needed) {
    if (!failure.empty()) break;
    for_each_chunk(path, [&](FileChunk& chunk) {
      if (!failure.empty()) return;
      bytes += chunk.bytes.size();
      self->request(node_agent, caf::duration{timeout}, file_chunk_atom::value, std::move(chunk))
          .receive([](caf::ok_atom) {}, fail);
    });
  }
  if (!failure.empty())
    throw Error("cluster: sending the files of " + describe(spec.id) + " to node " + node + " failed: " + failure);
  if (!needed.needed.empty()) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    char rate[96];
    std::snprintf(rate, sizeof rate, "%.1f MiB in %.2f s, %.0f MiB/s", static_cast<double>(bytes) / (1 << 20), seconds,
                  seconds > 0 ? static_cast<double>(bytes) / (1 << 20) / seconds : 0.0);
    state_->note(describe(spec.id) + ": sent " + std::to_string(needed.needed.size()) + " file(s), " + rate + ", to node " +
                node + " (it lacks them)");
  }
  self->request(node_agent, caf::duration{timeout}, spawn_role_atom::value, spec)
      .receive([&](caf::actor& spawned) { role = std::move(spawned); }, fail);
  if (!role)
    throw Error("cluster: spawning " + describe(spec.id) + " (factory \"" + spec.factory + "\") on node " + node +
                " failed: " + failure);
  self->send(watcher_, watch_atom::value, role, describe(spec.id) + " on node " + node);
  return role;
}

std::vector<std::string> Cluster::reports() const {
  std::lock_guard lock(state_->mutex);
  return state_->reports;
}

bool Cluster::wait_for_report(const std::string& needle, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mutex);
  return state_->changed.wait_for(lock, timeout, [&] {
    for (const auto& line : state_->reports)
      if (line.find(needle) != std::string::npos) return true;
    return false;
  });
}

}  // namespace troupe::actors
