/// The step-3 controller over fake roles: the order of the cycle, the concurrency of the
/// scores, and that only tickets and metrics pass through it.
#include <catch2/catch.hpp>

#include <caf/all.hpp>

#include <troupe/actors/controller.hpp>
#include <troupe/actors/role_actors.hpp>
#include <troupe/actors/system_config.hpp>

#include "fake_roles.hpp"

using namespace troupe::actors;
using testing::EventLog;
using testing::FakeRole;

namespace {

struct Fixture {
  SystemConfig config;
  caf::actor_system system{config};
  std::shared_ptr<InProcessTicketStore> store = std::make_shared<InProcessTicketStore>();
  std::shared_ptr<EventLog> log = std::make_shared<EventLog>();

  RoleContext context(const std::string& role, std::set<std::string> fail = {}) {
    return {RoleId{role, 0, 1}, std::make_shared<FakeRole>(role, log, std::chrono::milliseconds(200), fail), store};
  }
};

/// A GAE-free stand-in for rl/: advantages = reward - mean value, published beside
/// the data; the controller only sees the tickets it returns.
class FakeStage : public ExperienceStage {
 public:
  FakeStage(std::shared_ptr<TicketStore> store, std::shared_ptr<EventLog> log) : store_(std::move(store)), log_(std::move(log)) {}
  StageResult run(const ExperienceTickets& experience, int64_t) override {
    log_->begin("algorithm");
    auto values = fetch_all(*store_, experience.values).at("values");          // (B, T-1)
    auto rewards = fetch_all(*store_, experience.rewards).at("reward_score");  // (B)
    auto advantages = rewards.unsqueeze(1) - values;                           // (B, T-1)
    auto ticket = store_->publish({{"advantages", advantages}});
    log_->end("algorithm");
    return {{experience.sequences, TicketList{{ticket}}}, {{"advantage_mean", advantages.mean().item<double>()}}};
  }

 private:
  std::shared_ptr<TicketStore> store_;
  std::shared_ptr<EventLog> log_;
};

std::shared_ptr<ExperienceStage> fake_stage(std::shared_ptr<TicketStore> store, std::shared_ptr<EventLog> log) {
  return std::make_shared<FakeStage>(std::move(store), std::move(log));
}

}  // namespace

TEST_CASE("actors: the controller drives a step-3 cycle with tickets only", "[actors]") {
  Fixture f;
  StepThreeRoles roles{spawn_policy(f.system, f.context("actor")), spawn_critic(f.system, f.context("critic")),
                       spawn_reference(f.system, f.context("reference")), spawn_reward(f.system, f.context("reward"))};
  Controller controller(f.system, roles, fake_stage(f.store, f.log), std::chrono::seconds(20));
  std::vector<TraceEvent> trace;
  controller.on_trace([&](const TraceEvent& event) { trace.push_back(event); });

  auto ids = torch::randint(0, 1000, {64, 256}, torch::kLong);  // (B, T0): 128 KiB of prompts
  auto prompts = TicketList{{f.store->publish({{"input_ids", ids}, {"attention_mask", torch::ones_like(ids)}})}};
  auto result = controller.run_cycle(prompts, 4);

  SECTION("order: generate, then the scores together, then the algorithm, then training") {
    auto at = [&](const std::string& event) { return f.log->index_of(event); };
    const int generated = at("actor.generate end");
    REQUIRE(generated >= 0);
    int last_score_begin = -1, first_score_end = 1 << 30;
    for (auto role : {"actor", "reference", "critic", "reward"}) {
      const int begin = at(std::string(role) + ".score begin");
      const int end = at(std::string(role) + ".score end");
      REQUIRE(begin > generated);
      last_score_begin = std::max(last_score_begin, begin);
      first_score_end = std::min(first_score_end, end);
      CHECK(at("algorithm begin") > end);
    }
    // Every score started before the first one finished: they overlapped.
    CHECK(last_score_begin < first_score_end);
    CHECK(f.log->max_active() >= 4);
    CHECK(at("actor.train begin") > at("algorithm end"));
    CHECK(at("critic.train begin") > at("algorithm end"));
    // Policy and critic train concurrently too.
    CHECK(at("actor.train begin") < at("critic.train end"));
    CHECK(at("critic.train begin") < at("actor.train end"));
  }

  SECTION("results: the metrics come from the data the roles pulled") {
    auto sequences = torch::cat({ids, ids + 1}, 1);
    auto values = sequences.slice(1, 0, -1).to(torch::kFloat) / 10;
    auto advantages = sequences.to(torch::kFloat).sum(1).unsqueeze(1) - values;
    CHECK(result.policy.values.at("step") == 4.0);
    CHECK(result.policy.values.at("batches") == 2.0);
    CHECK(result.critic.values.at("sum.sequences") == sequences.to(torch::kDouble).sum().item<double>());
    CHECK(result.policy.values.at("sum.advantages") ==
          Approx(advantages.to(torch::kDouble).sum().item<double>()).epsilon(1e-6));
    auto logprobs = fetch_all(*f.store, result.experience.logprobs).at("logprobs");
    CHECK(torch::allclose(logprobs, -sequences.slice(1, 1).to(torch::kFloat) / 100));
    // The stage's own metrics come back in the cycle's result, not through a side channel.
    CHECK(result.stage.metrics.at("advantage_mean") == Approx(advantages.mean().item<double>()).epsilon(1e-6));
  }

  SECTION("the controller's messages hold only atoms, tickets and metrics") {
    caf::binary_serializer::container_type bytes;
    REQUIRE(trace.size() == 14);  // generate, 4 scores, 2 trains: each out and back
    const std::set<std::string> allowed = {"@atom", "troupe::TicketList", "troupe::TrainRequest", "troupe::Metrics"};
    for (const auto& event : trace) {
      for (size_t i = 0; i < event.message.size(); ++i) {
        const auto& name = f.system.types().portable_name(event.message.type(i));
        INFO(event.what << " element " << i);
        CHECK(allowed.count(name) == 1);
      }
      std::vector<char> buffer;
      caf::binary_serializer sink{f.system, buffer};
      REQUIRE_FALSE(sink(const_cast<caf::message&>(event.message)));
      INFO(event.what);
      CHECK(buffer.size() < 2048);  // the prompts alone are 128 KiB
    }
  }
}

TEST_CASE("actors: a role's failure stops the cycle with the stage, role and rank", "[actors]") {
  Fixture f;
  StepThreeRoles roles{spawn_policy(f.system, f.context("actor")), spawn_critic(f.system, f.context("critic")),
                       spawn_reference(f.system, f.context("reference", {"score"})),
                       spawn_reward(f.system, f.context("reward"))};
  Controller controller(f.system, roles, fake_stage(f.store, f.log), std::chrono::seconds(20));
  auto ids = torch::ones({2, 3}, torch::kLong);
  auto prompts = TicketList{{f.store->publish({{"input_ids", ids}, {"attention_mask", ids}})}};
  CHECK_THROWS_WITH(controller.run_cycle(prompts, 1),
                    Catch::Contains("step 1, reference.score") && Catch::Contains("role reference rank 0") &&
                        Catch::Contains("failed on purpose"));
  CHECK(f.log->index_of("actor.train begin") == -1);
}
