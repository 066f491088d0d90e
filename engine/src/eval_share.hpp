#pragma once
// Evaluation over data-parallel ranks (steps 1, 2 and DPO): each rank scores its share of
// the eval samples and the sums are added over the ranks, so the metrics are those of one
// process scoring them all.
#include <algorithm>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/engine/supervised_tasks.hpp>

namespace troupe::engine {

/// This rank's eval batches and how many passes every rank makes.
struct EvalShare {
  /// Of the first max_eval_samples samples, every world_size-th from `rank` (as
  /// DistributedSampler without shuffling, but not padded: no sample is scored twice),
  /// in batches of eval_batch_size.
  std::vector<std::vector<int64_t>> batches;
  /// The most batches any rank has (rank 0's). A rank with fewer runs padding passes up to
  /// it, so that under ZeRO stage 3 every rank joins the same per-layer gathers.
  int64_t passes = 0;
};

inline EvalShare eval_share(int64_t samples, const SupervisedTaskOptions& options) {
  const int64_t limit = options.max_eval_samples > 0 ? std::min(samples, options.max_eval_samples) : samples;
  const int64_t world = std::max(options.world_size, 1), batch = options.eval_batch_size;
  EvalShare share;
  for (int64_t i = options.rank; i < limit; i += world) {
    if (share.batches.empty() || static_cast<int64_t>(share.batches.back().size()) == batch) share.batches.emplace_back();
    share.batches.back().push_back(i);
  }
  const int64_t most_samples = (limit + world - 1) / world;  // rank 0's
  share.passes = (most_samples + batch - 1) / batch;
  return share;
}

/// `sums` added over the ranks (in place, through options.sum_over_ranks), in fp64 on
/// `device` (where the collectives run); nothing to do with one rank.
inline void add_over_ranks(std::vector<double>& sums, const SupervisedTaskOptions& options, const torch::Device& device) {
  if (options.world_size <= 1) return;
  if (!options.sum_over_ranks)
    throw Error("evaluation over " + std::to_string(options.world_size) + " ranks needs sum_over_ranks");
  auto tensor = torch::tensor(sums, torch::kFloat64).to(device);  // (S)
  options.sum_over_ranks(tensor);
  tensor = tensor.cpu();
  std::copy(tensor.data_ptr<double>(), tensor.data_ptr<double>() + tensor.numel(), sums.begin());
}

}  // namespace troupe::engine
