/// Role actors: typed behaviours over a RoleModel, with tickets in and out.
#include <troupe/actors/role_actors.hpp>

#include <caf/all.hpp>

#include <troupe/common/error.hpp>

namespace troupe::actors {
namespace {

/// What every role's handlers share: the model, the store, the counters. Handlers run
/// on the actor's own thread, one at a time, so no locking.
class RoleCore {
  static int64_t rows_of(const TensorBatch& batch) { return batch.empty() ? 0 : batch.begin()->second.size(0); }

 public:
  explicit RoleCore(RoleContext context) : context_(std::move(context)) {
    if (!context_.model) throw Error(describe(context_.id) + ": spawned without a RoleModel");
    if (!context_.store) throw Error(describe(context_.id) + ": spawned without a TicketStore");
    node_ = this_node_name();
  }

  // A rank whose share of a small batch is empty answers no ticket: the group's
  // gathered list holds the other ranks' shares. It still generates when generation is
  // a collective of its group (tensor parallel), or the others would wait for it.
  caf::result<TicketList> generate(const TicketList& prompts) {
    return guarded<TicketList>([&] {
      auto batch = shard_rows(fetch_all(*context_.store, prompts), context_.id.rank, context_.id.world);
      auto& generator = capability(context_.model->generator(), "generate");
      if (rows_of(batch) == 0 && !generator.generates_in_group()) return TicketList{};
      auto sequences = generator.generate(batch);
      if (rows_of(sequences) == 0) return TicketList{};
      return TicketList{{context_.store->publish(std::move(sequences))}};
    });
  }

  caf::result<TicketList> score(const TicketList& sequences) {
    return guarded<TicketList>([&] {
      auto batch = shard_rows(fetch_all(*context_.store, sequences), context_.id.rank, context_.id.world);
      if (rows_of(batch) == 0 && !context_.model->scores_in_group()) return TicketList{};
      auto scores = context_.model->score(batch);
      if (rows_of(scores) == 0) return TicketList{};
      return TicketList{{context_.store->publish(std::move(scores))}};
    });
  }

  caf::result<Metrics> train(const TrainRequest& request) {
    return guarded<Metrics>([&] {
      std::vector<TensorBatch> batches;
      for (const auto& tickets : request.batches)
        batches.push_back(shard_rows(fetch_all(*context_.store, tickets), context_.id.rank, context_.id.world));
      last_metrics_ = capability(context_.model->trainable(), "train").train(batches, request.step);
      return last_metrics_;
    });
  }

  caf::result<caf::ok_atom> save(const std::string& path) {
    return on_trainable("save weights", [&](Trainable& t) { t.save(path); });
  }
  caf::result<caf::ok_atom> load(const std::string& path) {
    return on_trainable("load weights", [&](Trainable& t) { t.load(path); });
  }
  caf::result<caf::ok_atom> save_state(const std::string& dir) {
    return on_trainable("write training checkpoints", [&](Trainable& t) { t.save_state(dir); });
  }
  caf::result<caf::ok_atom> load_state(const std::string& dir) {
    return on_trainable("resume from training checkpoints", [&](Trainable& t) { t.load_state(dir); });
  }

  RoleStates state() const {
    RoleState state;
    state.id = context_.id;
    state.node = node_;
    state.model = context_.model->describe();
    state.requests = requests_;
    state.failures = failures_;
    state.last_metrics = last_metrics_;
    return RoleStates{{state}};
  }

 private:
  /// The role's capability, or an error naming what it cannot do (a frozen role does
  /// not train; only the actor generates).
  template <class Capability>
  Capability& capability(Capability* offered, const std::string& what) const {
    if (!offered) throw Error("the " + context_.id.role + " role does not " + what + " (" + context_.model->describe() + ")");
    return *offered;
  }

  /// Runs `work` on the role's training capability (`what` names it in the error of a
  /// frozen role) and answers ok.
  template <class Work>
  caf::result<caf::ok_atom> on_trainable(const std::string& what, Work&& work) {
    return guarded<caf::ok_atom>([&] {
      work(capability(context_.model->trainable(), what));
      return caf::ok_atom::value;
    });
  }

  /// Runs `work`; an exception becomes the role's caf::error (never escapes the actor,
  /// which would kill it and every request queued behind).
  template <class T, class Work>
  caf::result<T> guarded(Work&& work) {
    ++requests_;
    try {
      return work();
    } catch (const std::exception& e) {
      ++failures_;
      return role_error(context_.id, e.what());
    }
  }

  RoleContext context_;
  std::string node_;
  int64_t requests_ = 0;
  int64_t failures_ = 0;
  Metrics last_metrics_;
};

using Core = std::shared_ptr<RoleCore>;

PolicyActor::behavior_type policy_behavior(PolicyActor::pointer, Core core) {
  return {[=](generate_atom, const TicketList& prompts) { return core->generate(prompts); },
          [=](score_atom, const TicketList& sequences) { return core->score(sequences); },
          [=](train_atom, const TrainRequest& request) { return core->train(request); },
          [=](save_atom, const std::string& path) { return core->save(path); },
          [=](load_atom, const std::string& path) { return core->load(path); },
          [=](checkpoint_atom, const std::string& dir) { return core->save_state(dir); },
          [=](restore_atom, const std::string& dir) { return core->load_state(dir); },
          [=](state_atom) { return core->state(); }};
}

CriticActor::behavior_type critic_behavior(CriticActor::pointer, Core core) {
  return {[=](score_atom, const TicketList& sequences) { return core->score(sequences); },
          [=](train_atom, const TrainRequest& request) { return core->train(request); },
          [=](save_atom, const std::string& path) { return core->save(path); },
          [=](load_atom, const std::string& path) { return core->load(path); },
          [=](checkpoint_atom, const std::string& dir) { return core->save_state(dir); },
          [=](restore_atom, const std::string& dir) { return core->load_state(dir); },
          [=](state_atom) { return core->state(); }};
}

/// Reference and reward share a signature: frozen models that only score.
template <class Handle>
typename Handle::behavior_type frozen_behavior(typename Handle::pointer, Core core) {
  return {[=](score_atom, const TicketList& sequences) { return core->score(sequences); },
          [=](load_atom, const std::string& path) { return core->load(path); },
          [=](state_atom) { return core->state(); }};
}

}  // namespace

caf::error role_error(const RoleId& id, const std::string& cause) {
  return caf::make_error(caf::sec::runtime_error, describe(id) + ": " + cause);
}

PolicyActor spawn_policy(caf::actor_system& system, RoleContext context) {
  return system.spawn<caf::detached>(policy_behavior, std::make_shared<RoleCore>(std::move(context)));
}

CriticActor spawn_critic(caf::actor_system& system, RoleContext context) {
  return system.spawn<caf::detached>(critic_behavior, std::make_shared<RoleCore>(std::move(context)));
}

ReferenceActor spawn_reference(caf::actor_system& system, RoleContext context) {
  return system.spawn<caf::detached>(frozen_behavior<ReferenceActor>, std::make_shared<RoleCore>(std::move(context)));
}

RewardActor spawn_reward(caf::actor_system& system, RoleContext context) {
  return system.spawn<caf::detached>(frozen_behavior<RewardActor>, std::make_shared<RoleCore>(std::move(context)));
}

caf::actor spawn_role(caf::actor_system& system, RoleContext context) {
  const auto role = context.id.role;
  if (role == "actor" || role == "policy") return caf::actor_cast<caf::actor>(spawn_policy(system, std::move(context)));
  if (role == "critic") return caf::actor_cast<caf::actor>(spawn_critic(system, std::move(context)));
  if (role == "reference") return caf::actor_cast<caf::actor>(spawn_reference(system, std::move(context)));
  if (role == "reward") return caf::actor_cast<caf::actor>(spawn_reward(system, std::move(context)));
  throw Error("spawn_role: unknown role \"" + role + "\" (expected actor, critic, reference or reward)");
}

}  // namespace troupe::actors
