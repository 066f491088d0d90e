#include <troupe/models/kv_cache.hpp>

#include <algorithm>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/models/config.hpp>

namespace troupe::models {

KVCache::KVCache(const Config& config, int64_t batch, int64_t capacity, torch::TensorOptions options)
    : written_(static_cast<size_t>(config.num_layers), 0),
      dtype_(c10::typeMetaToScalarType(options.dtype())),
      batch_(batch),
      capacity_(capacity) {
  keys_.reserve(config.num_layers);
  values_.reserve(config.num_layers);
  for (int64_t i = 0; i < config.num_layers; ++i) {
    keys_.push_back(torch::empty({batch, config.num_kv_heads, capacity, config.head_dim}, options));
    values_.push_back(torch::empty({batch, config.num_kv_heads, capacity, config.head_dim}, options));
  }
}

void KVCache::set_row_lengths(std::vector<int64_t> lengths) {
  if (static_cast<int64_t>(lengths.size()) > batch_)
    throw Error("KV cache: " + std::to_string(lengths.size()) + " rows exceed its " + std::to_string(batch_) + " slots");
  for (auto n : lengths)
    if (n < 0 || n + 1 > capacity_)
      throw Error("KV cache: a row of " + std::to_string(n) + " positions leaves no room in capacity " +
                  std::to_string(capacity_));
  per_row_ = true;
  row_lengths_ = std::move(lengths);
  advance(0);
}

KVCache KVCache::row_view(int64_t row) const {
  if (row < 0 || row >= batch_) throw Error("KV cache: row " + std::to_string(row) + " outside its " + std::to_string(batch_) + " slots");
  KVCache view = *this;
  for (auto& k : view.keys_) k = k.narrow(0, row, 1);
  for (auto& v : view.values_) v = v.narrow(0, row, 1);
  std::fill(view.written_.begin(), view.written_.end(), 0);
  view.batch_ = 1;
  view.length_ = 0;
  view.per_row_ = false;
  view.row_lengths_.clear();
  view.pass_rows_ = view.pass_positions_ = view.pass_lengths_ = torch::Tensor();
  return view;
}

void KVCache::copy_row(int64_t from, int64_t to, int64_t length) {
  if (from == to || length == 0) return;
  for (auto* list : {&keys_, &values_})
    for (auto& t : *list) t.select(0, to).narrow(1, 0, length).copy_(t.select(0, from).narrow(1, 0, length));
}

std::pair<torch::Tensor, torch::Tensor> KVCache::append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t t = k.size(2);
  if (per_row_) {
    const auto rows = static_cast<int64_t>(row_lengths_.size());
    if (t != 1 || k.size(0) != rows)
      throw Error("KV cache with per-row lengths: a pass appends one token to each of its " + std::to_string(rows) +
                  " rows, got " + std::to_string(k.size(0)) + " rows of " + std::to_string(t));
    auto& keys = keys_.at(layer);
    auto& values = values_.at(layer);
    // Row r's token at position row_lengths_[r]: (B, H_kv, D) written at [r, :, pos_r].
    using torch::indexing::Slice;
    keys.index_put_({pass_rows_, Slice(), pass_positions_}, k.select(2, 0).to(keys.scalar_type()));
    values.index_put_({pass_rows_, Slice(), pass_positions_}, v.select(2, 0).to(values.scalar_type()));
    written_.at(layer) = length_ + 1;
    return {keys.narrow(0, 0, rows).narrow(2, 0, length_ + 1), values.narrow(0, 0, rows).narrow(2, 0, length_ + 1)};
  }
  if (length_ + t > capacity_) {
    throw Error("KV cache full: " + std::to_string(length_) + " + " + std::to_string(t) + " positions exceed capacity " +
                std::to_string(capacity_));
  }
  auto& keys = keys_.at(layer);
  auto& values = values_.at(layer);
  keys.narrow(2, length_, t).copy_(k);  // converts to the cache's dtype
  values.narrow(2, length_, t).copy_(v);
  written_.at(layer) = length_ + t;
  return {keys.narrow(2, 0, length_ + t), values.narrow(2, 0, length_ + t)};
}

KVCache::LayerStorage KVCache::layer_storage(int64_t layer) const {
  if (per_row_) {
    const auto rows = static_cast<int64_t>(row_lengths_.size());
    return {keys_.at(layer).narrow(0, 0, rows), values_.at(layer).narrow(0, 0, rows),
            std::max(written_.at(layer), length_), written_.at(layer) > length_ ? pass_lengths_ : torch::Tensor()};
  }
  return {keys_.at(layer), values_.at(layer), std::max(written_.at(layer), length_), {}};
}

void KVCache::advance(int64_t tokens) {
  if (!per_row_) {
    length_ += tokens;
    return;
  }
  // Every row grew by `tokens` (a full row is fine until the next pass needs room).
  for (auto& n : row_lengths_) n += tokens;
  length_ = row_lengths_.empty() ? 0 : *std::max_element(row_lengths_.begin(), row_lengths_.end());
  std::fill(written_.begin(), written_.end(), 0);
  const auto rows = static_cast<int64_t>(row_lengths_.size());
  auto device = keys_.empty() ? torch::Device(torch::kCPU) : keys_.front().device();
  auto positions = torch::tensor(row_lengths_, torch::kLong);  // (B)
  pass_positions_ = positions.to(device);
  pass_lengths_ = positions + 1;  // the kernel reads it on the CPU
  pass_rows_ = torch::arange(rows, torch::TensorOptions().dtype(torch::kLong).device(device));
}

void KVCache::select_rows(const torch::Tensor& rows) {
  if (per_row_) throw Error("KV cache: select_rows() is for aligned batches; with per-row lengths use copy_row()");
  for (auto& k : keys_) k = k.index_select(0, rows);
  for (auto& v : values_) v = v.index_select(0, rows);
  batch_ = rows.size(0);
}

int64_t KVCache::bytes() const {
  int64_t total = 0;
  for (const auto& k : keys_) total += k.numel() * k.element_size();
  for (const auto& v : values_) total += v.numel() * v.element_size();
  return total;
}

}  // namespace troupe::models
