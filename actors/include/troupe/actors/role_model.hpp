#pragma once
/// What a role actor asks of its model. The actor does messaging, tickets and errors;
/// the RoleModel does the tensor work. Every role scores sequences; a role that also
/// generates (the actor) or trains (actor, critic) offers that capability, and a
/// request for one it lacks is answered with an error naming the role.
/// Implementations: the step-3 roles (step3_roles.hpp), ModelRole over troupe::models,
/// fakes in tests.
#include <string>
#include <vector>

#include <troupe/actors/messages.hpp>
#include <troupe/common/error.hpp>
#include <troupe/actors/ticket_store.hpp>

namespace troupe::actors {

/// A role that generates answers to prompts.
class Generator {
 public:
  virtual ~Generator() = default;
  /// Prompts {input_ids (B, T0), attention_mask (B, T0)} -> at least
  /// {sequences (B, T), attention_mask (B, T)} (actors/batch_keys.hpp).
  virtual TensorBatch generate(const TensorBatch& prompts) = 0;
  /// True when generate() is a collective over several ranks (a tensor-parallel
  /// generation group): a rank must call it even with no prompts of its own (0 rows),
  /// and answers nothing when it returns no rows.
  virtual bool generates_in_group() const { return false; }
};

/// A role with weights that train, and are saved and loaded.
class Trainable {
 public:
  virtual ~Trainable() = default;
  /// One training step over the experience batches; returns its metrics.
  virtual Metrics train(const std::vector<TensorBatch>& experience, int64_t step) = 0;
  virtual void save(const std::string& path) = 0;
  virtual void load(const std::string& path) = 0;
  /// Writes what resuming needs (the weights as they train, optimizer, schedule, RNG,
  /// counters) under the directory `dir`, each data-parallel rank its own part;
  /// load_state() restores it into a role built with the same settings. The default
  /// refuses: a role that cannot be checkpointed says so instead of resuming wrongly.
  virtual void save_state(const std::string& dir) { throw Error("this role cannot write a training checkpoint"); }
  virtual void load_state(const std::string& dir) { throw Error("this role cannot resume from a training checkpoint"); }
};

class RoleModel {
 public:
  virtual ~RoleModel() = default;
  /// Sequences -> this role's per-token or per-sequence outputs (log-probs, values,
  /// rewards), named by the implementation.
  virtual TensorBatch score(const TensorBatch& sequences) = 0;
  /// True when score() is a collective over the role's ranks (a model whose layers are
  /// partitioned over them).
  virtual bool scores_in_group() const { return false; }
  /// A short description for state reports ("opt 2 layers, cpu").
  virtual std::string describe() const = 0;
  /// This role's generation, or null when it does not generate.
  virtual Generator* generator() { return nullptr; }
  /// This role's training, or null when its weights are frozen.
  virtual Trainable* trainable() { return nullptr; }
};

}  // namespace troupe::actors
