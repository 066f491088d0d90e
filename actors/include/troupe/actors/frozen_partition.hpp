#pragma once
/// ZeRO stage 3 for a frozen model (DeepSpeed-Chat partitions its reward and reference
/// models this way when their trained peers run stage 3): each decoder layer's weights
/// are split over the ranks of a data-parallel group in DeepSpeed's layout (flattened,
/// padded, one contiguous chunk per rank), gathered just before the layer runs and freed
/// right after, so a rank holds 1/N of the layers plus one whole layer at a time.
/// Embeddings, norms and heads stay whole on every rank. Every rank must run the model
/// equally often, since each layer's gather is a collective.
#include <cstdint>
#include <memory>
#include <vector>

#include <torch/types.h>

#include <troupe/models/causal_lm.hpp>

namespace troupe::actors {

class DataParallel;

class FrozenPartition {
 public:
  /// Partitions `model`'s decoder layers over `group` and installs the layer hooks.
  FrozenPartition(models::CausalLM model, std::shared_ptr<DataParallel> group);
  ~FrozenPartition();
  FrozenPartition(const FrozenPartition&) = delete;
  FrozenPartition& operator=(const FrozenPartition&) = delete;

  /// Bytes of parameters this rank keeps between passes: whole embeddings, norms and
  /// heads, plus its chunks of the layers.
  int64_t resident_bytes() const;
  /// Bytes the whole model's parameters take.
  int64_t whole_bytes() const { return whole_bytes_; }
  int world() const;

 private:
  struct Piece {
    torch::Tensor parameter;  // the model's: set_data swaps whole and empty
    std::vector<int64_t> shape;
    int64_t numel = 0;
    torch::Tensor chunk;  // this rank's, (ceil(numel / W)), zero-padded
  };
  void gather(int64_t layer);
  void release(int64_t layer);

  models::CausalLM model_;
  std::shared_ptr<DataParallel> group_;
  std::vector<std::vector<Piece>> layers_;
  int64_t whole_bytes_ = 0;
  int64_t kept_bytes_ = 0;
};

}  // namespace troupe::actors
