#pragma once
// The training batches of the supervised-style phases (steps 1, 2 and DPO): each epoch's
// shuffled index batches as DistributedSampler gives them.
#include <cstdint>
#include <memory>
#include <vector>

#include <troupe/data/pipeline.hpp>
#include <troupe/data/sampler.hpp>
#include <troupe/engine/supervised_tasks.hpp>

namespace troupe::engine {

inline data::SamplerOptions epoch_sampler(const SupervisedTaskOptions& options, int64_t epoch) {
  data::SamplerOptions s;
  s.seed = options.seed;
  s.epoch = epoch;
  s.rank = options.rank;
  s.world_size = options.world_size;
  return s;
}

/// The batches of `epoch`, computed once per epoch and kept.
class EpochBatches {
 public:
  EpochBatches(int64_t samples, SupervisedTaskOptions options) : samples_(samples), options_(options) {}
  const std::vector<int64_t>& get(int64_t epoch, int64_t batch) {
    if (epoch != epoch_) {
      batches_ = data::distributed_batches(samples_, options_.train_batch_size, epoch_sampler(options_, epoch));
      epoch_ = epoch;
    }
    return batches_.at(static_cast<size_t>(batch));
  }

 private:
  int64_t samples_;
  SupervisedTaskOptions options_;
  int64_t epoch_ = -1;
  std::vector<std::vector<int64_t>> batches_;
};

/// Micro-batches per epoch of `samples` training samples (the same every epoch).
inline int64_t batches_per_epoch(int64_t samples, const SupervisedTaskOptions& options) {
  return static_cast<int64_t>(data::distributed_batches(samples, options.train_batch_size, epoch_sampler(options, 0)).size());
}

}  // namespace troupe::engine
