/// The frozen reference policy.
#include <troupe/actors/reference_role.hpp>

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/common/error.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/hybrid_scoring.hpp>

#include "role_training.hpp"

namespace troupe::actors {

ReferenceRole::ReferenceRole(std::shared_ptr<engine::ReferencePolicy> reference) : reference_(std::move(reference)) {
  if (!reference_) throw Error("ReferenceRole: no reference policy");
}

TensorBatch ReferenceRole::score(const TensorBatch& batch) {
  const auto device = device_of(*reference_->model());
  return {{keys::ref_logprobs, reference_->logprobs(require_tensor(batch, keys::sequences, "reference score").to(device),
                                                require_tensor(batch, keys::attention_mask, "reference score").to(device),
                                                answer_scoring(batch))}};
}

std::string ReferenceRole::describe() const { return "reference: " + reference_->memory_summary(); }

}  // namespace troupe::actors
