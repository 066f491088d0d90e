#pragma once
/// Which samples each rank trains on per epoch, as PyTorch's DistributedSampler does
/// (DeepSpeed-Chat's loaders use it): torch.randperm with a generator seeded
/// seed + epoch, padded by wrapping around (or cut with drop_last) to a multiple of
/// world_size, then every world_size-th index from `rank`.
#include <cstdint>
#include <vector>

namespace troupe::data {

struct SamplerOptions {
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t epoch = 0;
  int rank = 0;
  int world_size = 1;
  bool drop_last = false;
};

/// The indices of `n` samples rank `options.rank` visits this epoch, in order.
std::vector<int64_t> distributed_indices(int64_t n, const SamplerOptions& options);

/// Indices 0 .. min(n, limit) - 1 in order, cut into batches of `batch_size` (the last
/// may be smaller); limit <= 0 means all n. For evaluation, which visits a split in order.
std::vector<std::vector<int64_t>> sequential_batches(int64_t n, int64_t batch_size, int64_t limit = 0);

/// Those indices cut into batches of `batch_size` (the last may be smaller).
std::vector<std::vector<int64_t>> distributed_batches(int64_t n, int64_t batch_size, const SamplerOptions& options);

}  // namespace troupe::data
