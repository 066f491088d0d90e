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

 private:
  std::shared_ptr<engine::ReferencePolicy> reference_;
};

}  // namespace troupe::actors
