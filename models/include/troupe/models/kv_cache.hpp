#pragma once
/// Key/value cache for incremental decoding: preallocated per layer so decoding a
/// token writes one slot instead of re-running the prefix.
#include <vector>

#include <torch/types.h>

namespace troupe::models {

struct Config;

class KVCache {
 public:
  /// Room for `capacity` positions of a batch of `batch` sequences, stored in
  /// `options`' dtype, which may differ from the model's (a bf16 cache for an fp32
  /// model halves its memory): append() converts.
  KVCache(const Config& config, int64_t batch, int64_t capacity, torch::TensorOptions options);

  /// Positions already cached (the same for every row: left padding keeps rows aligned).
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int64_t batch() const { return batch_; }

  /// Stores `k`, `v` (B, H_kv, T, D) of `layer` after the cached positions (converted
  /// to the cache's dtype) and returns views of everything cached so far,
  /// (B, H_kv, length + T, D), in the cache's dtype.
  std::pair<torch::Tensor, torch::Tensor> append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v);

  /// One layer's storage as decode kernels read it in place: keys and values
  /// (B, H_kv, capacity, D) in the cache's dtype, of which positions [0, length) are
  /// written (the cached ones and those appended to this layer since the last advance).
  struct LayerStorage {
    torch::Tensor keys, values;
    int64_t length = 0;
  };
  LayerStorage layer_storage(int64_t layer) const;

  torch::ScalarType dtype() const { return dtype_; }

  /// Advances the length once every layer has appended `tokens` positions.
  void advance(int64_t tokens);

  /// Keeps only the given rows (finished sequences can be dropped from the batch).
  void select_rows(const torch::Tensor& rows);

  /// Bytes held by the cache tensors.
  int64_t bytes() const;

 private:
  std::vector<torch::Tensor> keys_;    // per layer (B, H_kv, capacity, D)
  std::vector<torch::Tensor> values_;  // per layer (B, H_kv, capacity, D)
  std::vector<int64_t> written_;       // per layer: positions written (length_ + appended this pass)
  torch::ScalarType dtype_;
  int64_t batch_;
  int64_t capacity_;
  int64_t length_ = 0;
};

}  // namespace troupe::models
