#pragma once
/// What the ranks of a tensor-parallel group agree on around one generate(): the
/// gathered prompts, the seed, and (after) that they produced the same tokens.
#include <cstdint>

#include <torch/types.h>

#include <troupe/models/generation.hpp>
#include <troupe/models/tensor_parallel.hpp>

namespace troupe::engine {

/// Every rank's prompts in rank order, left-padded to the group's longest prompt.
struct GroupPrompts {
  torch::Tensor ids;   // (B_total, T_max)
  torch::Tensor mask;  // (B_total, T_max), the callers' dtype
  int64_t first_row = 0;      ///< where this rank's rows start
  int64_t rows = 0;           ///< this rank's rows
  int64_t extra_columns = 0;  ///< T_max - this rank's T0 (left padding added)
};

/// Gathers (B_i, T_i) prompts of every rank with sums only (each rank fills its own
/// slot of a zero buffer): exact for token ids and masks.
GroupPrompts gather_group_prompts(const torch::Tensor& ids, const torch::Tensor& mask,
                                  const models::TensorParallelRank& group);

/// Rank 0's seed, on every rank (the ranks sample the same tokens from the same logits).
uint64_t group_seed(uint64_t seed, const models::TensorParallelRank& group);

/// Throws troupe::Error when the ranks' sequences differ (their collectives disagreed).
void require_same_tokens(const torch::Tensor& sequences, const models::TensorParallelRank& group);

/// This rank's rows of the group's result, without the left padding the gather added.
models::GenerationResult own_rows(const models::GenerationResult& group_result, const GroupPrompts& prompts);

}  // namespace troupe::engine
