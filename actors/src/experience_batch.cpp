#include <troupe/actors/experience_batch.hpp>

#include <troupe/common/error.hpp>

namespace troupe::actors {

namespace {

const std::string kExtraPrefix = "extra.";

}  // namespace

TensorBatch to_tensor_batch(const rl::Experience& exp) {
  TensorBatch batch;
  for (const auto& [name, entry] : exp.extras)
    if (entry.second.defined())
      batch[kExtraPrefix + std::to_string(static_cast<int>(entry.first)) + "." + name] = entry.second;
  exp.for_each([&](const std::string& name, rl::Layout, const torch::Tensor& tensor) {
    if (tensor.defined() && !batch.count(name) && !exp.extras.count(name)) batch[name] = tensor;
  });
  return batch;
}

rl::Experience experience_from_batch(const TensorBatch& batch) {
  rl::Experience exp;
  std::map<std::string, torch::Tensor*> fields;
  exp.for_each([&](const std::string& name, rl::Layout, torch::Tensor& tensor) { fields[name] = &tensor; });
  for (const auto& [name, tensor] : batch) {
    if (name.rfind(kExtraPrefix, 0) == 0) {
      const auto dot = name.find('.', kExtraPrefix.size());
      if (dot == std::string::npos) throw Error("experience batch: malformed extra tensor name \"" + name + "\"");
      const int layout = std::stoi(name.substr(kExtraPrefix.size(), dot - kExtraPrefix.size()));
      exp.set_extra(name.substr(dot + 1), static_cast<rl::Layout>(layout), tensor);
      continue;
    }
    auto found = fields.find(name);
    if (found == fields.end()) throw Error("experience batch: unknown tensor \"" + name + "\"");
    *found->second = tensor;
  }
  return exp;
}

}  // namespace troupe::actors
