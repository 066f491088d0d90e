#include <troupe/models/kv_cache.hpp>

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

std::pair<torch::Tensor, torch::Tensor> KVCache::append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t t = k.size(2);
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
  return {keys_.at(layer), values_.at(layer), std::max(written_.at(layer), length_)};
}

void KVCache::advance(int64_t tokens) { length_ += tokens; }

void KVCache::select_rows(const torch::Tensor& rows) {
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
