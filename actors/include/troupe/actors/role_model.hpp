#pragma once
/// What a role actor asks of its model. The actor does messaging, tickets and errors;
/// the RoleModel does the tensor work. Implementations: ModelRole over troupe::models
/// (generate, score), the hybrid engine for training (later), fakes in tests.
#include <string>
#include <vector>

#include <troupe/actors/messages.hpp>
#include <troupe/actors/ticket_store.hpp>

namespace troupe::actors {

class RoleModel {
 public:
  virtual ~RoleModel() = default;
  /// Prompts {"input_ids" (B, T0), "attention_mask" (B, T0)} -> at least
  /// {"sequences" (B, T), "attention_mask" (B, T)}.
  virtual TensorBatch generate(const TensorBatch& prompts) = 0;
  /// True when generate() is a collective over several ranks (a tensor-parallel
  /// generation group): a rank must call it even with no prompts of its own (0 rows),
  /// and answers nothing when it returns no rows.
  virtual bool generates_in_group() const { return false; }
  /// The same for score() (a model whose layers are partitioned over its ranks).
  virtual bool scores_in_group() const { return false; }
  /// Sequences -> this role's per-token or per-sequence outputs (log-probs, values,
  /// rewards), named by the implementation.
  virtual TensorBatch score(const TensorBatch& sequences) = 0;
  /// One training step over the experience batches; returns its metrics.
  virtual Metrics train(const std::vector<TensorBatch>& experience, int64_t step) = 0;
  virtual void save(const std::string& path) = 0;
  virtual void load(const std::string& path) = 0;
  /// A short description for state reports ("opt 2 layers, cpu").
  virtual std::string describe() const = 0;
};

}  // namespace troupe::actors
