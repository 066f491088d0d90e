/// The step-3 controller: tickets in, tickets and metrics out.
#include <troupe/actors/controller.hpp>

#include <functional>
#include <string>

#include <caf/all.hpp>

#include <troupe/common/error.hpp>

namespace troupe::actors {
namespace {

/// The reply handlers of one cycle's requests: the first failure, named by the step and
/// the request, is kept for check() to throw; each reply is traced before it is kept.
struct CycleReplies {
  CycleReplies(caf::actor_system& system, int64_t step, std::function<void(const std::string&, caf::message)> trace)
      : system(system), step(step), trace(std::move(trace)) {}

  caf::actor_system& system;
  int64_t step;
  std::function<void(const std::string&, caf::message)> trace;
  std::string failure;

  auto fail_with(const std::string& stage) {
    return [this, stage](caf::error& error) {
      if (failure.empty()) failure = "step " + std::to_string(step) + ", " + stage + ": " + system.render(error);
    };
  }
  void check() const {
    if (!failure.empty()) throw Error(failure);
  }
  template <class Reply>
  auto keep(const std::string& what, Reply& into) {
    return [this, what, &into](Reply& reply) {
      trace(what + " -> reply", caf::make_message(reply));
      into = std::move(reply);
    };
  }
};

}  // namespace

Controller::Controller(caf::actor_system& system, StepThreeRoles roles, std::shared_ptr<ExperienceStage> stage,
                       std::chrono::milliseconds timeout)
    : system_(system), roles_(std::move(roles)), stage_(std::move(stage)), timeout_(timeout) {
  if (!roles_.policy || !roles_.critic || !roles_.reference || !roles_.reward)
    throw Error("Controller: every step-3 role (policy, critic, reference, reward) needs an actor");
  if (!stage_) throw Error("Controller: no experience stage given");
}

void Controller::trace(const std::string& what, caf::message message) {
  if (observer_) observer_(TraceEvent{what, std::move(message)});
}

CycleResult Controller::run_cycle(const TicketList& prompts, int64_t step) {
  caf::scoped_actor self{system_};
  const caf::duration timeout{timeout_};
  CycleReplies replies{system_, step, [this](const std::string& what, caf::message m) { trace(what, std::move(m)); }};

  ExperienceTickets generated;
  generated.prompts = prompts;
  trace("policy.generate", caf::make_message(generate_atom::value, prompts));
  self->request(roles_.policy, timeout, generate_atom::value, prompts)
      .receive(replies.keep("policy.generate", generated.sequences), replies.fail_with("policy.generate"));
  replies.check();
  return run_cycle_generated(generated, step);
}

CycleResult Controller::run_cycle_generated(const ExperienceTickets& generated, int64_t step) {
  caf::scoped_actor self{system_};
  const caf::duration timeout{timeout_};
  CycleReplies replies{system_, step, [this](const std::string& what, caf::message m) { trace(what, std::move(m)); }};

  CycleResult result;
  auto& experience = result.experience;
  experience.prompts = generated.prompts;
  experience.sequences = generated.sequences;

  // The four scores: concurrently, all requests leaving before any reply is awaited, or
  // in turn. Each scorer pulls the sequences from the policy itself.
  const auto& sequences = experience.sequences;
  struct Score {
    const char* name;
    caf::actor role;
    TicketList* into;
  };
  const Score scores[] = {{"policy.score", caf::actor_cast<caf::actor>(roles_.policy), &experience.logprobs},
                          {"reference.score", caf::actor_cast<caf::actor>(roles_.reference), &experience.ref_logprobs},
                          {"critic.score", caf::actor_cast<caf::actor>(roles_.critic), &experience.values},
                          {"reward.score", caf::actor_cast<caf::actor>(roles_.reward), &experience.rewards}};
  if (in_turn_) {
    for (const auto& score : scores) {
      trace(score.name, caf::make_message(score_atom::value, sequences));
      self->request(score.role, timeout, score_atom::value, sequences)
          .receive(replies.keep(score.name, *score.into), replies.fail_with(score.name));
      replies.check();
    }
  } else {
    for (const auto& score : scores) trace(score.name, caf::make_message(score_atom::value, sequences));
    auto policy_score = self->request(roles_.policy, timeout, score_atom::value, sequences);
    auto reference_score = self->request(roles_.reference, timeout, score_atom::value, sequences);
    auto critic_score = self->request(roles_.critic, timeout, score_atom::value, sequences);
    auto reward_score = self->request(roles_.reward, timeout, score_atom::value, sequences);
    policy_score.receive(replies.keep("policy.score", experience.logprobs), replies.fail_with("policy.score"));
    reference_score.receive(replies.keep("reference.score", experience.ref_logprobs), replies.fail_with("reference.score"));
    critic_score.receive(replies.keep("critic.score", experience.values), replies.fail_with("critic.score"));
    reward_score.receive(replies.keep("reward.score", experience.rewards), replies.fail_with("reward.score"));
    replies.check();
  }

  try {
    result.stage = stage_->run(experience, step);
  } catch (const std::exception& e) {
    throw Error("step " + std::to_string(step) + ", algorithm: " + e.what());
  }

  TrainRequest request{result.stage.training, step};
  trace("policy.train", caf::make_message(train_atom::value, request));
  trace("critic.train", caf::make_message(train_atom::value, request));
  if (in_turn_) {
    self->request(roles_.policy, timeout, train_atom::value, request)
        .receive(replies.keep("policy.train", result.policy), replies.fail_with("policy.train"));
    replies.check();
    self->request(roles_.critic, timeout, train_atom::value, request)
        .receive(replies.keep("critic.train", result.critic), replies.fail_with("critic.train"));
  } else {
    auto policy_train = self->request(roles_.policy, timeout, train_atom::value, request);
    auto critic_train = self->request(roles_.critic, timeout, train_atom::value, request);
    policy_train.receive(replies.keep("policy.train", result.policy), replies.fail_with("policy.train"));
    critic_train.receive(replies.keep("critic.train", result.critic), replies.fail_with("critic.train"));
  }
  replies.check();
  return result;
}

}  // namespace troupe::actors
