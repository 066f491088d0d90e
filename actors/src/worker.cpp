/// The node agent process: join, prove, verify, serve.
#include <troupe/actors/worker.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <mutex>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "file_staging.hpp"
#include "ucx_ticket_store.hpp"
#include "node_agent.hpp"
#include "registrar_actor.hpp"
#include <troupe/actors/role_actors.hpp>
#include "secret.hpp"
#include <troupe/actors/system_config.hpp>
#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>

namespace troupe::actors {
namespace {

constexpr auto handshake_timeout = std::chrono::seconds(30);

/// Set in the environment of a worker that started itself anew to join again.
constexpr const char* rejoining_variable = "TROUPE_WORKER_REJOINING";

std::string format_rejoin(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g s", seconds);
  return text;
}

/// The controller's registrar, trying once a second until `patience` runs out (one try
/// when it is zero): a restarted controller needs a moment to listen again.
caf::expected<caf::actor> reach_controller(caf::actor_system& system, const WorkerOptions& options) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(options.rejoin_seconds * 1000));
  for (;;) {
    auto remote = system.middleman().remote_actor(options.host, options.port);
    if (remote || std::chrono::steady_clock::now() >= deadline) return remote;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

/// Replaces this process with a fresh run of the same program and arguments: CAF 0.17's
/// middleman cannot be shut down while it holds role actors exported to a vanished
/// controller, so a worker that joins again starts clean.
[[noreturn]] void start_anew() {
  std::vector<std::string> args;
  if (std::FILE* cmdline = std::fopen("/proc/self/cmdline", "rb")) {
    std::string arg;
    for (int c; (c = std::fgetc(cmdline)) != EOF;) {
      if (c == '\0') {
        args.push_back(arg);
        arg.clear();
      } else {
        arg.push_back(static_cast<char>(c));
      }
    }
    std::fclose(cmdline);
  }
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  ::setenv(rejoining_variable, "1", 1);
  if (!args.empty()) ::execv("/proc/self/exe", argv.data());
  log::error("troupe worker: cannot start anew to join again (", std::strerror(errno), "), exiting");
  std::_Exit(1);
}

/// The role actors this node spawned: stopped when the agent serves no more (the actor
/// system waits for every actor before the process can exit). Their ids lead this
/// process's log lines ("[actor 1/2] ...").
struct SpawnedRoles {
  std::mutex mutex;
  std::vector<caf::actor> actors;
  std::vector<RoleId> ids;
  void stop_all() {
    std::lock_guard lock(mutex);
    for (const auto& actor : actors) caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    actors.clear();
  }
};

/// `built`: the roles this process built, handed to each factory (a reference shares the
/// actor rank spawned here before it).
NodeAgentActor::behavior_type node_agent(NodeAgentActor::pointer self, RoleFactories factories,
                                         std::shared_ptr<TicketStore> store, NodeResources resources,
                                         std::shared_ptr<SpawnedRoles> spawned, std::shared_ptr<StagingArea> staging,
                                         std::shared_ptr<ProcessRoles> built) {
  auto node_error = [resources](const std::exception& e) {
    return caf::make_error(caf::sec::runtime_error, "node " + resources.node + ": " + e.what());
  };
  return {[=](spawn_role_atom, const RoleSpec& given) -> caf::result<caf::actor> {
            const auto spec = staging->localize(given);  // paths as this node has them
            auto factory = factories.find(spec.factory);
            if (factory == factories.end())
              return caf::make_error(caf::sec::runtime_error,
                                     "node " + resources.node + ": no role factory \"" + spec.factory + "\"");
            try {
              {  // from here on (building the model too) this process's lines name the role
                std::lock_guard lock(spawned->mutex);
                spawned->ids.push_back(spec.id);
                log::set_prefix(log_prefix(spawned->ids));
              }
              log::debug("troupe worker: building ", describe(spec.id), " with role factory \"", spec.factory, "\"");
              auto model = factory->second(spec, *built);
              // What runs here, in the worker's own log (e.g. a reference sharing its
              // actor's base).
              log::info("troupe worker: ", describe(spec.id), ": ", model->describe());
              auto role = spawn_role(self->system(), RoleContext{spec.id, model, store});
              std::lock_guard lock(spawned->mutex);
              spawned->actors.push_back(role);
              return role;
            } catch (const std::exception& e) {
              return role_error(spec.id, std::string("on node ") + resources.node + ": " + e.what());
            }
          },
          [=](resources_atom) { return resources; },
          [=](heartbeat_atom) { return caf::ok_atom::value; },
          [=](stage_atom, const StageRequest& request) -> caf::result<StageReply> {
            try {
              auto reply = staging->plan(request);
              if (!reply.needed.empty())
                log::info("troupe worker: receiving ", reply.needed.size(),
                          " file(s) this node lacks from the controller into ", staging->root().string());
              return reply;
            } catch (const std::exception& e) {
              return node_error(e);
            }
          },
          [=](file_chunk_atom, const FileChunk& chunk) -> caf::result<caf::ok_atom> {
            try {
              staging->write(chunk);
              return caf::ok_atom::value;
            } catch (const std::exception& e) {
              return node_error(e);
            }
          }};
}

}  // namespace

NodeResources local_resources() {
  NodeResources resources;
  resources.node = this_node_name();
  resources.cpu_threads = static_cast<int64_t>(std::thread::hardware_concurrency());
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  resources.memory_bytes = pages > 0 && page_size > 0 ? int64_t(pages) * page_size : 0;
  return resources;
}

int run_node_agent(const WorkerOptions& options) {
  auto report = options.log ? options.log : [](const std::string& line) { log::info(line); };
  if (options.secret.empty()) throw Error("troupe worker: a shared secret is required (--secret or TROUPE_SECRET)");
  const auto where = options.host + ":" + std::to_string(options.port);
  SystemConfig config;
  caf::actor_system system{config};
  auto remote = reach_controller(system, options);
  if (!remote && std::getenv(rejoining_variable)) {
    // The run it served ended, or its controller did not come back: nothing failed here.
    report("troupe worker: no controller at " + where + " within --rejoin " + format_rejoin(options.rejoin_seconds) +
           " after the last run, exiting");
    std::fflush(nullptr);
    std::_Exit(0);
  }
  if (!remote)
    throw Error("troupe worker: cannot reach the controller at " + where +
                (options.rejoin_seconds > 0 ? " within --rejoin " + format_rejoin(options.rejoin_seconds) : "") + ": " +
                system.render(remote.error()));
  auto registrar = caf::actor_cast<RegistrarActor>(*remote);
  auto resources = local_resources();
  resources.cluster_node = options.cluster_node;

  caf::scoped_actor self{system};
  std::string failure;
  auto on_error = [&](caf::error& error) { failure = system.render(error); };
  auto agent_nonce = random_nonce();
  Bytes controller_nonce;
  self->request(registrar, handshake_timeout, hello_atom::value, agent_nonce)
      .receive([&](Bytes& nonce) { controller_nonce = std::move(nonce); }, on_error);
  if (!failure.empty()) throw Error("troupe worker: joining " + where + " failed: " + failure);

  JoinRequest join{agent_nonce, controller_nonce,
                   secret_proof(options.secret, "agent", agent_nonce, controller_nonce), resources};
  Bytes controller_proof;
  self->request(registrar, handshake_timeout, join_atom::value, join)
      .receive([&](Bytes& proof) { controller_proof = std::move(proof); }, on_error);
  if (!failure.empty()) throw Error("troupe worker: the controller at " + where + " rejected this node: " + failure);
  // Mutual: the agent's handle goes only to a controller that also knows the secret.
  if (!same_bytes(controller_proof, secret_proof(options.secret, "controller", agent_nonce, controller_nonce)))
    throw Error("troupe worker: the controller at " + where + " could not prove the shared secret; not joining");

  auto store = std::make_shared<UcxTicketStore>(resources.node);
  auto spawned = std::make_shared<SpawnedRoles>();
  auto staging = std::make_shared<StagingArea>(options.stage_dir.empty() ? StagingArea::default_root() : options.stage_dir);
  auto agent = system.spawn(node_agent, options.factories, std::shared_ptr<TicketStore>(store), resources, spawned, staging,
                            std::make_shared<ProcessRoles>());
  self->request(registrar, handshake_timeout, register_atom::value, controller_nonce, caf::actor_cast<caf::actor>(agent))
      .receive([](caf::ok_atom) {}, on_error);
  if (!failure.empty()) throw Error("troupe worker: registering with " + where + " failed: " + failure);
  report("troupe worker: node " + resources.node + " joined " + where + " (" + std::to_string(resources.cpu_threads) +
      " CPU threads, " + std::to_string(resources.memory_bytes >> 20) + " MiB)");

  // Serve until the controller is gone: its registrar going down means the connection
  // closed or the controller shut the cluster.
  self->monitor(registrar);
  bool running = true;
  self->receive_while(running)([&](caf::down_msg& down) {
    report("troupe worker: controller at " + where + " gone (" + system.render(down.reason) + "), " +
           (options.rejoin_seconds > 0 ? "joining again for up to " + format_rejoin(options.rejoin_seconds) : "exiting"));
    running = false;
  });
  caf::anon_send_exit(agent, caf::exit_reason::user_shutdown);
  spawned->stop_all();
  if (options.rejoin_seconds > 0) start_anew();
  // End the process here: CAF 0.17's middleman keeps references to the role actors it
  // exported to the vanished controller, so the actor system's destructor would wait
  // for their threads forever. Nothing is left to save once the controller is gone.
  std::fflush(nullptr);
  std::_Exit(0);
}

}  // namespace troupe::actors
