#pragma once
/// A named batch of tensors: the unit that channels and stores move.
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>

#include <ATen/ATen.h>

namespace troupe::transport {

/// Tensors by name, ordered by name (the wire order). Tensors share storage with
/// whoever inserted them: a batch is a set of handles, not a copy.
class TensorBatch {
 public:
  using Map = std::map<std::string, at::Tensor>;

  TensorBatch() = default;
  TensorBatch(std::initializer_list<Map::value_type> items);

  /// Adds or replaces `name`; an undefined tensor is an error.
  void insert(const std::string& name, at::Tensor tensor);
  /// The tensor called `name`; throws troupe::Error naming the batch's tensors if absent.
  const at::Tensor& get(const std::string& name) const;
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  std::size_t size() const { return tensors_.size(); }
  bool empty() const { return tensors_.empty(); }
  /// Sum of the tensors' byte sizes (numel * element size).
  std::uint64_t nbytes() const;

  Map::const_iterator begin() const { return tensors_.begin(); }
  Map::const_iterator end() const { return tensors_.end(); }
  const Map& tensors() const { return tensors_; }

 private:
  Map tensors_;
};

}  // namespace troupe::transport
