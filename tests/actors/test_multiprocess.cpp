/// Real `troupe worker` processes join this test's controller: a request runs across
/// processes with data pulled actor to actor, a killed worker is reported, a wrong or
/// missing secret is rejected.
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/all.hpp>

#include "cluster.hpp"
#include "model_role.hpp"
#include <troupe/actors/reference_actor.hpp>
#include <troupe/actors/reward_actor.hpp>
#include <troupe/actors/system_config.hpp>
#include "ucx_ticket_store.hpp"
#include "worker_group.hpp"

extern char** environ;

using namespace troupe::actors;

namespace {

constexpr auto patience = std::chrono::seconds(60);
const std::string gpt2_dir = std::string(TROUPE_FIXTURES_DIR) + "/models/gpt2";

/// A `troupe worker` child process, killed on destruction if still running.
class WorkerProcess {
 public:
  WorkerProcess(uint16_t port, const std::string& secret) {
    std::vector<std::string> args = {TROUPE_CLI_PATH, "worker", "--join", "127.0.0.1:" + std::to_string(port)};
    if (!secret.empty()) {
      args.push_back("--secret");
      args.push_back(secret);
    }
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    // The child must not inherit a secret from the environment.
    std::vector<char*> env;
    for (char** e = environ; *e; ++e)
      if (std::string(*e).rfind("TROUPE_SECRET=", 0) != 0) env.push_back(*e);
    env.push_back(nullptr);
    REQUIRE(posix_spawn(&pid_, TROUPE_CLI_PATH, nullptr, nullptr, argv.data(), env.data()) == 0);
  }
  ~WorkerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  void kill_hard() { kill(pid_, SIGKILL); }
  /// Exit status once it ended by itself; -1 if still running after `timeout`.
  int wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
};

std::string node_of(const std::vector<NodeResources>& nodes, pid_t pid) {
  for (const auto& node : nodes)
    if (node.node.size() > std::to_string(pid).size() && node.node.substr(node.node.rfind(':') + 1) == std::to_string(pid))
      return node.node;
  FAIL("no node for pid " << pid);
  return {};
}

}  // namespace

TEST_CASE("actors: roles on worker processes score sequences pulled across processes", "[actors][multiprocess]") {
  SystemConfig config;
  caf::actor_system system{config};
  std::vector<std::string> lines;
  Cluster cluster(system, {"s3cret", "127.0.0.1", 0, [&](const std::string& line) { lines.push_back(line); }});
  WorkerProcess first(cluster.port(), "s3cret"), second(cluster.port(), "s3cret");
  auto nodes = cluster.wait_for_nodes(2, patience);
  for (const auto& node : nodes) {
    CHECK(node.cpu_threads > 0);
    CHECK(node.memory_bytes > 0);
  }
  const auto node_a = node_of(nodes, first.pid()), node_b = node_of(nodes, second.pid());

  auto spec = [&](const std::string& role) { return RoleSpec{"model", RoleId{role, 0, 1}, {{"model", gpt2_dir}}}; };
  auto reference = caf::actor_cast<ReferenceActor>(cluster.spawn_role(node_a, spec("reference"), patience));
  auto reward = caf::actor_cast<RewardActor>(cluster.spawn_role(node_b, spec("reward"), patience));
  // A one-rank group around the remote reward: fails fast once the reward is lost.
  auto guarded_reward = spawn_reward_group(system, {reward});

  // The sequences live in this process; both workers pull them from here over UCX.
  UcxTicketStore store;
  auto sequences = torch::randint(0, 50, {3, 7}, torch::kLong);  // (B, T)
  auto mask = torch::ones_like(sequences);
  mask[0][6] = 0;  // a padded tail: the reward reads the last real token
  auto ticket = TicketList{{store.publish({{"sequences", sequences}, {"attention_mask", mask}})}};

  caf::scoped_actor self{system};
  TicketList ref_out, reward_out;
  std::string failure;
  auto on_error = [&](caf::error& e) { failure = system.render(e); };
  auto ref_request = self->request(reference, caf::duration{patience}, score_atom::value, ticket);
  auto reward_request = self->request(reward, caf::duration{patience}, score_atom::value, ticket);
  ref_request.receive([&](TicketList& t) { ref_out = t; }, on_error);
  reward_request.receive([&](TicketList& t) { reward_out = t; }, on_error);
  REQUIRE(failure.empty());
  REQUIRE(ref_out.tickets.size() == 1);
  CHECK(ref_out.tickets[0].node == node_a);
  CHECK(reward_out.tickets[0].node == node_b);

  // Pull the outputs from the workers and compare with the same model run here.
  auto local = ModelRole::load_from(gpt2_dir, "reference", {});
  auto expected = local->score({{"sequences", sequences}, {"attention_mask", mask}}).at("ref_logprobs");
  auto pulled = store.fetch(ref_out.tickets[0]).at("ref_logprobs");
  CHECK(pulled.sizes() == expected.sizes());
  CHECK(torch::allclose(pulled, expected, 1e-5, 1e-5));
  CHECK(store.fetch(reward_out.tickets[0]).at("reward_score").sizes() == torch::IntArrayRef{3});
  CHECK(store.served() == 2);  // each worker pulled the sequences once
  CHECK(store.pulled() == 2);  // and this process pulled one output from each

  SECTION("a killed worker is noticed and reported with role, rank and node") {
    second.kill_hard();
    const auto line = "lost role reward rank 0 on node " + node_b;
    // Within 5 s: the dead process's connection closes, and CAF's monitoring reports it.
    REQUIRE(cluster.wait_for_report(line, std::chrono::seconds(5)));
    CHECK(cluster.wait_for_report("lost node " + node_b, std::chrono::seconds(5)));
    // CAF 0.17 does not bounce a request sent to a dead remote proxy: it fails only
    // by its timeout. The watcher's report above is what notices the loss in time.
    failure.clear();
    self->request(reward, std::chrono::seconds(2), score_atom::value, ticket).receive([](TicketList&) {}, on_error);
    CHECK_FALSE(failure.empty());
    // Through the group the loss answers at once, with what happened.
    failure.clear();
    const auto asked = std::chrono::steady_clock::now();
    self->request(guarded_reward, caf::duration{patience}, score_atom::value, ticket)
        .receive([](TicketList&) {}, on_error);
    CHECK_THAT(failure, Catch::Contains("rank 0 is down"));
    CHECK(std::chrono::steady_clock::now() - asked < std::chrono::seconds(5));
    // The other node still answers.
    RoleStates states;
    self->request(reference, caf::duration{patience}, state_atom::value)
        .receive([&](RoleStates& s) { states = s; }, on_error);
    REQUIRE(states.ranks.size() == 1);
    CHECK(states.ranks[0].node == node_a);
  }
}

TEST_CASE("actors: a worker with a wrong or missing secret is rejected", "[actors][multiprocess]") {
  SystemConfig config;
  caf::actor_system system{config};
  Cluster cluster(system, {"s3cret", "127.0.0.1", 0, [](const std::string&) {}});

  WorkerProcess wrong(cluster.port(), "guess");
  CHECK(wrong.wait_exit(patience) == 1);
  CHECK(cluster.wait_for_report("wrong shared secret", std::chrono::seconds(5)));

  WorkerProcess missing(cluster.port(), "");
  CHECK(missing.wait_exit(patience) == 1);
  CHECK(cluster.nodes().empty());
  CHECK_THROWS_WITH(Cluster(system, {"", "127.0.0.1", 0, {}}), Catch::Contains("shared secret is required"));
}
