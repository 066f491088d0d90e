/// The step-3 controller: tickets in, tickets and metrics out.
#include <troupe/actors/controller.hpp>

#include <caf/all.hpp>

#include <troupe/common/error.hpp>

namespace troupe::actors {

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
  std::string failure;
  auto fail_with = [&](const std::string& stage) {
    return [&, stage](caf::error& error) {
      if (failure.empty()) failure = "step " + std::to_string(step) + ", " + stage + ": " + system_.render(error);
    };
  };
  auto check = [&] {
    if (!failure.empty()) throw Error(failure);
  };
  // Each reply handler records what came back before keeping it.
  auto keep = [&](const std::string& what, TicketList& into) {
    return [&, what](TicketList& reply) {
      trace(what + " -> reply", caf::make_message(reply));
      into = std::move(reply);
    };
  };

  ExperienceTickets generated;
  generated.prompts = prompts;
  trace("policy.generate", caf::make_message(generate_atom::value, prompts));
  self->request(roles_.policy, timeout, generate_atom::value, prompts)
      .receive(keep("policy.generate", generated.sequences), fail_with("policy.generate"));
  check();
  return run_cycle_generated(generated, step);
}

CycleResult Controller::run_cycle_generated(const ExperienceTickets& generated, int64_t step) {
  caf::scoped_actor self{system_};
  const caf::duration timeout{timeout_};
  std::string failure;
  auto fail_with = [&](const std::string& stage) {
    return [&, stage](caf::error& error) {
      if (failure.empty()) failure = "step " + std::to_string(step) + ", " + stage + ": " + system_.render(error);
    };
  };
  auto check = [&] {
    if (!failure.empty()) throw Error(failure);
  };
  auto keep = [&](const std::string& what, TicketList& into) {
    return [&, what](TicketList& reply) {
      trace(what + " -> reply", caf::make_message(reply));
      into = std::move(reply);
    };
  };

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
          .receive(keep(score.name, *score.into), fail_with(score.name));
      check();
    }
  } else {
    for (const auto& score : scores) trace(score.name, caf::make_message(score_atom::value, sequences));
    auto policy_score = self->request(roles_.policy, timeout, score_atom::value, sequences);
    auto reference_score = self->request(roles_.reference, timeout, score_atom::value, sequences);
    auto critic_score = self->request(roles_.critic, timeout, score_atom::value, sequences);
    auto reward_score = self->request(roles_.reward, timeout, score_atom::value, sequences);
    policy_score.receive(keep("policy.score", experience.logprobs), fail_with("policy.score"));
    reference_score.receive(keep("reference.score", experience.ref_logprobs), fail_with("reference.score"));
    critic_score.receive(keep("critic.score", experience.values), fail_with("critic.score"));
    reward_score.receive(keep("reward.score", experience.rewards), fail_with("reward.score"));
    check();
  }

  try {
    result.stage = stage_->run(experience, step);
  } catch (const std::exception& e) {
    throw Error("step " + std::to_string(step) + ", algorithm: " + e.what());
  }

  TrainRequest request{result.stage.training, step};
  trace("policy.train", caf::make_message(train_atom::value, request));
  trace("critic.train", caf::make_message(train_atom::value, request));
  auto keep_metrics = [&](const std::string& what, Metrics& into) {
    return [&, what](Metrics& reply) {
      trace(what + " -> reply", caf::make_message(reply));
      into = std::move(reply);
    };
  };
  if (in_turn_) {
    self->request(roles_.policy, timeout, train_atom::value, request)
        .receive(keep_metrics("policy.train", result.policy), fail_with("policy.train"));
    check();
    self->request(roles_.critic, timeout, train_atom::value, request)
        .receive(keep_metrics("critic.train", result.critic), fail_with("critic.train"));
  } else {
    auto policy_train = self->request(roles_.policy, timeout, train_atom::value, request);
    auto critic_train = self->request(roles_.critic, timeout, train_atom::value, request);
    policy_train.receive(keep_metrics("policy.train", result.policy), fail_with("policy.train"));
    critic_train.receive(keep_metrics("critic.train", result.critic), fail_with("critic.train"));
  }
  check();
  return result;
}

}  // namespace troupe::actors
