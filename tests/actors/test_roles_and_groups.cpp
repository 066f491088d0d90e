/// Role actors over fake models: tickets in and out, errors as caf::error naming the
/// role and rank, worker groups fanning out and gathering.
#include <catch2/catch.hpp>

#include <caf/all.hpp>

#include <troupe/actors/role_actors.hpp>
#include <troupe/actors/system_config.hpp>
#include "worker_group.hpp"

#include "fake_roles.hpp"

using namespace troupe::actors;
using testing::EventLog;
using testing::FakeRole;

namespace {

constexpr auto wait = std::chrono::seconds(10);

TicketList publish_prompts(TicketStore& store, int64_t rows, int64_t width) {
  auto ids = torch::arange(rows * width, torch::kLong).reshape({rows, width});  // (B, T0)
  return TicketList{{store.publish({{"input_ids", ids}, {"attention_mask", torch::ones_like(ids)}})}};
}

}  // namespace

TEST_CASE("actors: a role actor answers with tickets its consumers resolve", "[actors]") {
  SystemConfig config;
  caf::actor_system system{config};
  auto store = std::make_shared<InProcessTicketStore>();
  auto log = std::make_shared<EventLog>();
  auto policy = spawn_policy(system, {RoleId{"actor", 0, 1}, std::make_shared<FakeRole>("actor", log), store});
  caf::scoped_actor self{system};
  auto prompts = publish_prompts(*store, 3, 4);
  TicketList sequences;
  self->request(policy, wait, generate_atom::value, prompts)
      .receive([&](TicketList& reply) { sequences = reply; }, [&](caf::error& e) { FAIL(system.render(e)); });
  REQUIRE(sequences.tickets.size() == 1);
  CHECK(sequences.tickets[0].rows == std::vector<int64_t>{3, 3});
  auto batch = fetch_all(*store, sequences);
  auto ids = store->fetch(prompts.tickets[0]).at("input_ids");
  CHECK(torch::equal(batch.at("sequences"), torch::cat({ids, ids + 1}, 1)));

  RoleStates states;
  self->request(policy, wait, state_atom::value).receive([&](RoleStates& s) { states = s; }, [](caf::error&) {});
  REQUIRE(states.ranks.size() == 1);
  CHECK(states.ranks[0].requests == 1);
  CHECK(states.ranks[0].model == "fake actor");
}

TEST_CASE("actors: a failure inside a handler is a caf::error with role, rank and cause", "[actors]") {
  SystemConfig config;
  caf::actor_system system{config};
  auto store = std::make_shared<InProcessTicketStore>();
  auto log = std::make_shared<EventLog>();
  auto critic = spawn_critic(
      system, {RoleId{"critic", 1, 2}, std::make_shared<FakeRole>("critic", log, std::chrono::milliseconds(0),
                                                                  std::set<std::string>{"train"}), store});
  caf::scoped_actor self{system};
  std::string failure;
  self->request(critic, wait, train_atom::value, TrainRequest{{}, 3})
      .receive([](Metrics&) {}, [&](caf::error& e) { failure = system.render(e); });
  CHECK_THAT(failure, Catch::Contains("role critic rank 1 of 2: fake critic.train failed on purpose"));

  // A ticket nobody published: the store's error, with the role's name on it.
  failure.clear();
  self->request(critic, wait, score_atom::value, TicketList{{Ticket{store->node(), 999, {}, {}, {}, {}}}})
      .receive([](TicketList&) {}, [&](caf::error& e) { failure = system.render(e); });
  CHECK_THAT(failure, Catch::Contains("role critic rank 1 of 2: ticket 999"));

  // The actor survived both and counts them.
  RoleStates states;
  self->request(critic, wait, state_atom::value).receive([&](RoleStates& s) { states = s; }, [](caf::error&) {});
  REQUIRE(states.ranks.size() == 1);
  CHECK(states.ranks[0].requests == 2);
  CHECK(states.ranks[0].failures == 2);
}

TEST_CASE("actors: a worker group fans a request out to its ranks and gathers in rank order", "[actors]") {
  SystemConfig config;
  caf::actor_system system{config};
  auto store = std::make_shared<InProcessTicketStore>();
  auto log = std::make_shared<EventLog>();
  const int world = 3;
  std::vector<PolicyActor> ranks;
  for (int rank = 0; rank < world; ++rank)
    ranks.push_back(spawn_policy(system, {RoleId{"actor", rank, world},
                                          std::make_shared<FakeRole>("actor", log, std::chrono::milliseconds(150)),
                                          store}));
  auto group = spawn_policy_group(system, ranks);
  caf::scoped_actor self{system};
  auto prompts = publish_prompts(*store, 7, 2);

  TicketList sequences;
  self->request(group, wait, generate_atom::value, prompts)
      .receive([&](TicketList& reply) { sequences = reply; }, [&](caf::error& e) { FAIL(system.render(e)); });
  REQUIRE(sequences.tickets.size() == world);
  // Rows 7 split as 2, 2, 3 (rank * B / world boundaries), gathered back in order.
  CHECK(sequences.tickets[0].rows[0] == 2);
  CHECK(sequences.tickets[1].rows[0] == 2);
  CHECK(sequences.tickets[2].rows[0] == 3);
  auto ids = store->fetch(prompts.tickets[0]).at("input_ids");
  CHECK(torch::equal(fetch_all(*store, sequences).at("sequences"), torch::cat({ids, ids + 1}, 1)));
  // The ranks ran at the same time, not one after another.
  CHECK(log->max_active() == world);

  Metrics metrics;
  self->request(group, wait, train_atom::value, TrainRequest{{sequences}, 5})
      .receive([&](Metrics& m) { metrics = m; }, [&](caf::error& e) { FAIL(system.render(e)); });
  CHECK(metrics.values.at("step") == 5.0);
  // Each rank summed its own rows; the group reports the mean over ranks.
  const double total = torch::cat({ids, ids + 1}, 1).sum().item<double>();
  CHECK(metrics.values.at("sum.sequences") == Approx(total / world));

  RoleStates states;
  self->request(group, wait, state_atom::value).receive([&](RoleStates& s) { states = s; }, [](caf::error&) {});
  REQUIRE(states.ranks.size() == world);
  for (int rank = 0; rank < world; ++rank) CHECK(states.ranks[rank].id.rank == rank);
}

TEST_CASE("actors: a worker group answers with the failing rank's error", "[actors]") {
  SystemConfig config;
  caf::actor_system system{config};
  auto store = std::make_shared<InProcessTicketStore>();
  auto log = std::make_shared<EventLog>();
  std::vector<RewardActor> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    std::set<std::string> fail;
    if (rank == 1) fail.insert("score");
    ranks.push_back(spawn_reward(system, {RoleId{"reward", rank, 2},
                                          std::make_shared<FakeRole>("reward", log, std::chrono::milliseconds(0), fail),
                                          store}));
  }
  auto group = spawn_reward_group(system, ranks);
  caf::scoped_actor self{system};
  auto sequences = TicketList{{store->publish({{"sequences", torch::ones({4, 3}, torch::kLong)}})}};
  std::string failure;
  self->request(group, wait, score_atom::value, sequences)
      .receive([](TicketList&) {}, [&](caf::error& e) { failure = system.render(e); });
  CHECK_THAT(failure, Catch::Contains("role reward rank 1 of 2: fake reward.score failed on purpose"));
}
