/// The frozen reference policy.
#include "reference_role.hpp"

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/common/error.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/hybrid_scoring.hpp>

#include "role_training.hpp"

namespace troupe::actors {

ReferenceRole::ReferenceRole(std::shared_ptr<engine::ReferencePolicy> reference,
                             std::shared_ptr<DataParallel> partition_over)
    : reference_(std::move(reference)) {
  if (!reference_) throw Error("ReferenceRole: no reference policy");
  if (partition_over && partition_over->world() > 1 && reference_->kind() == engine::ReferenceKind::FrozenCopy)
    partition_ = std::make_unique<engine::Zero3Partition>(reference_->model(), partition_over->zero3_collectives(), nullptr,
                                                          partition_over->zero3_prefetch_layers());
}

TensorBatch ReferenceRole::score(const TensorBatch& batch) {
  const auto device = device_of(*reference_->model());
  return {{keys::ref_logprobs, reference_->logprobs(require_tensor(batch, keys::sequences, "reference score").to(device),
                                                require_tensor(batch, keys::attention_mask, "reference score").to(device),
                                                answer_scoring(batch))}};
}

std::string ReferenceRole::describe() const {
  if (!partition_) return "reference: " + reference_->memory_summary();
  return "reference: a frozen copy, ZeRO-3: layers partitioned over " + std::to_string(partition_->world()) +
         " ranks (holds " + engine::format_bytes(partition_->param_resident_bytes()) + " of " +
         engine::format_bytes(partition_->whole_param_bytes()) + " of parameters)";
}

}  // namespace troupe::actors
