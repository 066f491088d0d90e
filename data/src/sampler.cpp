/// DistributedSampler-compatible epoch order per rank.
#include <troupe/data/sampler.hpp>

#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <troupe/common/error.hpp>

namespace troupe::data {

std::vector<int64_t> distributed_indices(int64_t n, const SamplerOptions& o) {
  if (n < 0) throw Error("distributed_indices: negative dataset size " + std::to_string(n));
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size)
    throw Error("distributed_indices: rank " + std::to_string(o.rank) + " outside world size " + std::to_string(o.world_size));
  std::vector<int64_t> order(static_cast<size_t>(n));
  if (o.shuffle) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed + static_cast<uint64_t>(o.epoch));
    auto perm = at::randperm(n, gen, at::kLong);  // (n,)
    std::copy(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n, order.begin());
  } else {
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  }
  const int64_t world = o.world_size;
  const int64_t per_rank = (o.drop_last && n % world != 0) ? (n - world + world - 1) / world  // ceil((n - w) / w)
                                                           : (n + world - 1) / world;
  const int64_t total = std::max<int64_t>(per_rank, 0) * world;
  if (total > n) {  // wrap around to pad, as often as needed
    if (n == 0) return {};
    const auto original = order;
    while (static_cast<int64_t>(order.size()) < total) {
      const auto take = std::min<int64_t>(total - static_cast<int64_t>(order.size()), n);
      order.insert(order.end(), original.begin(), original.begin() + take);
    }
  } else {
    order.resize(static_cast<size_t>(total));
  }
  std::vector<int64_t> mine;
  for (int64_t i = o.rank; i < total; i += world) mine.push_back(order[static_cast<size_t>(i)]);
  return mine;
}

std::vector<std::vector<int64_t>> sequential_batches(int64_t n, int64_t batch_size, int64_t limit) {
  if (batch_size <= 0) throw Error("sequential_batches: batch size must be positive, got " + std::to_string(batch_size));
  if (limit > 0) n = std::min(n, limit);
  std::vector<std::vector<int64_t>> batches;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    batches.emplace_back();
    for (int64_t i = begin; i < std::min(n, begin + batch_size); ++i) batches.back().push_back(i);
  }
  return batches;
}

std::vector<std::vector<int64_t>> distributed_batches(int64_t n, int64_t batch_size, const SamplerOptions& options) {
  if (batch_size <= 0) throw Error("distributed_batches: batch size must be positive, got " + std::to_string(batch_size));
  const auto mine = distributed_indices(n, options);
  std::vector<std::vector<int64_t>> batches;
  for (size_t i = 0; i < mine.size(); i += static_cast<size_t>(batch_size))
    batches.emplace_back(mine.begin() + static_cast<std::ptrdiff_t>(i),
                         mine.begin() + static_cast<std::ptrdiff_t>(std::min(mine.size(), i + static_cast<size_t>(batch_size))));
  return batches;
}

}  // namespace troupe::data
