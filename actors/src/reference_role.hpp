#pragma once
/// The frozen reference of step 3 (scores only).
#include <memory>
#include <optional>
#include <string>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/actors/role_model.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/engine/zero3.hpp>

namespace troupe::actors {

/// The frozen reference: "ref_logprobs". It only scores.
class ReferenceRole : public RoleModel {
 public:
  /// With `partition_over` (ZeRO stage 3 over more than one rank), a frozen-copy
  /// reference keeps 1/N of each decoder layer on this rank and gathers the layer for
  /// each pass, as the reward model does; every rank constructs its role alike. A
  /// reference that is the actor's base is in the actor's layout already and is left so.
  explicit ReferenceRole(std::shared_ptr<engine::ReferencePolicy> reference,
                         std::shared_ptr<DataParallel> partition_over = nullptr);
  TensorBatch score(const TensorBatch& sequences) override;
  std::string describe() const override;
  /// Partitioned layers (its own, or a ZeRO-3 actor's it shares) are gathered for each
  /// pass: every rank scores every request.
  bool scores_in_group() const override { return reference_->model()->has_layer_hooks(); }
  /// Whether this role partitioned its own frozen copy.
  bool partitioned() const { return partition_ != nullptr; }

 private:
  std::shared_ptr<engine::ReferencePolicy> reference_;
  std::unique_ptr<engine::Zero3Partition> partition_;
};

}  // namespace troupe::actors
