#pragma once
/// The single controller of step 3: drives one generate-score-train cycle by moving
/// tickets between the role actors. It never holds a tensor: every batch goes actor to
/// actor through the TicketStore named by its ticket.
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/message.hpp>

#include <troupe/actors/critic_actor.hpp>
#include <troupe/actors/experience_stage.hpp>
#include <troupe/actors/policy_actor.hpp>
#include <troupe/actors/reference_actor.hpp>
#include <troupe/actors/reward_actor.hpp>

namespace troupe::actors {

/// The four roles of step 3 (single actors or worker groups).
struct StepThreeRoles {
  PolicyActor policy;
  CriticActor critic;
  ReferenceActor reference;
  RewardActor reward;
};

/// Everything the controller sent or received, for logs and for tests that check
/// only tickets and metrics travel through it.
struct TraceEvent {
  std::string what;  ///< "policy.generate", "critic.score -> reply", ...
  caf::message message;
};

struct CycleResult {
  ExperienceTickets experience;
  StageResult stage;  ///< the training batches and the experience stage's metrics
  Metrics policy;
  Metrics critic;
};

class Controller {
 public:
  Controller(caf::actor_system& system, StepThreeRoles roles, std::shared_ptr<ExperienceStage> stage,
             std::chrono::milliseconds timeout = std::chrono::hours(24));
  /// One step-3 cycle: generate, four scores, the experience stage, then policy and
  /// critic training (concurrently, or in turn: set_roles_in_turn). Throws troupe::Error naming the stage and the
  /// role's error.
  CycleResult run_cycle(const TicketList& prompts, int64_t step);
  /// The cycle after generation, on sequences generated elsewhere (`generated.prompts`
  /// and `generated.sequences`; --async_rollout's rollout copy): the four scores, the
  /// experience stage, training. run_cycle() is policy.generate, then this.
  CycleResult run_cycle_generated(const ExperienceTickets& generated, int64_t step);
  /// Roles that share one process share its cores and memory: with `in_turn`, the four
  /// scores and the two trainings run one role after another (DeepSpeed-Chat's order),
  /// so only one role's activations and gradients exist at a time; otherwise (the
  /// default, for roles in processes of their own) they run concurrently.
  void set_roles_in_turn(bool in_turn) { in_turn_ = in_turn; }
  /// Called for every message the controller sends and every reply it gets.
  void on_trace(std::function<void(const TraceEvent&)> observer) { observer_ = std::move(observer); }

 private:
  void trace(const std::string& what, caf::message message);

  caf::actor_system& system_;
  StepThreeRoles roles_;
  std::shared_ptr<ExperienceStage> stage_;
  std::chrono::milliseconds timeout_;
  std::function<void(const TraceEvent&)> observer_;
  bool in_turn_ = false;
};

}  // namespace troupe::actors
