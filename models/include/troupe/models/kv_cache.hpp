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
  /// With per-row lengths, the longest row's.
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  /// Rows a pass runs over: the batch, or with per-row lengths the rows in use.
  int64_t batch() const { return per_row_ ? static_cast<int64_t>(row_lengths_.size()) : batch_; }
  /// Rows of storage (the slots a continuous batch can use).
  int64_t slots() const { return batch_; }

  /// Continuous batching: rows [0, lengths.size()) of the storage are in use and row r
  /// holds lengths[r] positions of its own. A pass then appends one token per row at
  /// the row's own position, and decode attention reads each row's own positions only.
  /// The pass's attention mask has length() + 1 columns, 1 up to and including each
  /// row's new position.
  void set_row_lengths(std::vector<int64_t> lengths);
  bool per_row() const { return per_row_; }
  const std::vector<int64_t>& row_lengths() const { return row_lengths_; }
  /// An aligned cache of batch 1 over storage row `row` (views, no copy): a prefill
  /// through it writes that row in place. Its length starts at 0.
  KVCache row_view(int64_t row) const;
  /// Copies the first `length` positions of storage row `from` into row `to`.
  void copy_row(int64_t from, int64_t to, int64_t length);

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
    torch::Tensor row_lengths;  // (B) int64 with per-row lengths (the new token included), else undefined
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
  bool per_row_ = false;
  std::vector<int64_t> row_lengths_;   // per row in use, before the pass's token
  torch::Tensor pass_rows_;            // (B) 0..B-1, for the pass's writes
  torch::Tensor pass_positions_;       // (B) where the pass writes each row's token
  torch::Tensor pass_lengths_;         // (B) each row's length with the pass's token, for the kernel
};

}  // namespace troupe::models
