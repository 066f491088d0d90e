#pragma once
/// The frozen reference of step 3 (scores only).
#include <memory>
#include <optional>
#include <string>

#include <troupe/actors/role_model.hpp>
#include <troupe/engine/hybrid_scoring.hpp>

namespace troupe::actors {

/// The frozen reference: "ref_logprobs". It only scores.
class ReferenceRole : public RoleModel {
 public:
  explicit ReferenceRole(std::shared_ptr<engine::ReferencePolicy> reference);
  TensorBatch score(const TensorBatch& sequences) override;
  std::string describe() const override;
  /// The shared base of a ZeRO-3 actor gathers each layer: every rank scores every request.
  bool scores_in_group() const override { return reference_->model()->has_layer_hooks(); }

 private:
  std::shared_ptr<engine::ReferencePolicy> reference_;
};

}  // namespace troupe::actors
