#pragma once
/// rl::Experience as a TensorBatch and back, so an experience moves between actors
/// under one ticket like any other batch. Layouts travel as the tensor names
/// ("extra.<layout>.<name>" for an algorithm's extras).
#include <troupe/actors/ticket_store.hpp>
#include <troupe/rl/experience.hpp>

namespace troupe::actors {

/// Every defined tensor of `exp` by name.
TensorBatch to_tensor_batch(const rl::Experience& exp);

/// The experience of a batch made by to_tensor_batch(); throws troupe::Error naming an
/// unknown tensor.
rl::Experience experience_from_batch(const TensorBatch& batch);

}  // namespace troupe::actors
