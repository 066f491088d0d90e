#pragma once
/// Key/value cache for incremental decoding: preallocated per layer so decoding a
/// token writes one slot instead of re-running the prefix.
#include <vector>

#include <torch/types.h>

namespace troupe::models {

struct Config;

class KVCache {
 public:
  /// Room for `capacity` positions of a batch of `batch` sequences.
  KVCache(const Config& config, int64_t batch, int64_t capacity, torch::TensorOptions options);

  /// Positions already cached (the same for every row: left padding keeps rows aligned).
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int64_t batch() const { return batch_; }

  /// Stores `k`, `v` (B, H_kv, T, D) of `layer` after the cached positions and returns
  /// views of everything cached so far, (B, H_kv, length + T, D).
  std::pair<torch::Tensor, torch::Tensor> append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v);

  /// Advances the length once every layer has appended `tokens` positions.
  void advance(int64_t tokens);

  /// Keeps only the given rows (finished sequences can be dropped from the batch).
  void select_rows(const torch::Tensor& rows);

  /// Bytes held by the cache tensors.
  int64_t bytes() const;

 private:
  std::vector<torch::Tensor> keys_;    // per layer (B, H_kv, capacity, D)
  std::vector<torch::Tensor> values_;  // per layer (B, H_kv, capacity, D)
  int64_t batch_;
  int64_t capacity_;
  int64_t length_ = 0;
};

}  // namespace troupe::models
