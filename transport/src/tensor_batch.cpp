#include <troupe/transport/tensor_batch.hpp>

#include <troupe/common/error.hpp>

namespace troupe::transport {

TensorBatch::TensorBatch(std::initializer_list<Map::value_type> items) {
  for (const auto& [name, tensor] : items) insert(name, tensor);
}

void TensorBatch::insert(const std::string& name, at::Tensor tensor) {
  if (!tensor.defined()) throw Error("transport: TensorBatch::insert: tensor '" + name + "' is undefined");
  tensors_[name] = std::move(tensor);
}

const at::Tensor& TensorBatch::get(const std::string& name) const {
  auto found = tensors_.find(name);
  if (found == tensors_.end()) {
    std::string names;
    for (const auto& [key, value] : tensors_) names += (names.empty() ? "" : ", ") + key;
    throw Error("transport: batch has no tensor '" + name + "' (it has: " + (names.empty() ? "none" : names) + ")");
  }
  return found->second;
}

std::uint64_t TensorBatch::nbytes() const {
  std::uint64_t total = 0;
  for (const auto& [name, tensor] : tensors_) total += tensor.numel() * tensor.element_size();
  return total;
}

}  // namespace troupe::transport
