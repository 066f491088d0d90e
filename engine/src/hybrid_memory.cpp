#include <troupe/engine/hybrid_memory.hpp>

#include <cstdio>
#include <unordered_set>
#include <vector>

#include <c10/core/CachingDeviceAllocator.h>
#include <torch/optim.h>

#include <troupe/common/error.hpp>
#include <troupe/engine/host_memory.hpp>
#include <troupe/models/config.hpp>

namespace troupe::engine {
namespace {

int64_t tensor_bytes(const torch::Tensor& t) {
  return t.defined() ? static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size()) : 0;
}

/// Counts each storage once: tied weights (embedding = LM head) are one tensor.
class StorageSet {
 public:
  int64_t add(const torch::Tensor& t) {
    if (!t.defined() || t.numel() == 0) return 0;
    return seen_.insert(t.storage().unsafeGetStorageImpl()).second ? tensor_bytes(t) : 0;
  }

 private:
  std::unordered_set<const void*> seen_;
};

/// The tensors of one parameter's optimizer state.
std::vector<torch::Tensor> state_tensors(const torch::optim::OptimizerParamState& state) {
  using namespace torch::optim;
  if (auto* s = dynamic_cast<const AdamWParamState*>(&state)) return {s->exp_avg(), s->exp_avg_sq(), s->max_exp_avg_sq()};
  if (auto* s = dynamic_cast<const AdamParamState*>(&state)) return {s->exp_avg(), s->exp_avg_sq(), s->max_exp_avg_sq()};
  if (auto* s = dynamic_cast<const SGDParamState*>(&state)) return {s->momentum_buffer()};
  if (auto* s = dynamic_cast<const RMSpropParamState*>(&state)) return {s->square_avg(), s->momentum_buffer(), s->grad_avg()};
  if (auto* s = dynamic_cast<const AdagradParamState*>(&state)) return {s->sum()};
  throw Error(std::string("optimizer_state_bytes: unknown optimizer state type ") + typeid(state).name() +
              " (known: Adam, AdamW, SGD, RMSprop, Adagrad)");
}

}  // namespace

int64_t optimizer_state_bytes(const torch::optim::Optimizer& optimizer) {
  StorageSet seen;
  int64_t total = 0;
  for (const auto& [key, state] : optimizer.state()) {
    (void)key;
    for (const auto& t : state_tensors(*state)) total += seen.add(t);
  }
  return total;
}

int64_t parameter_bytes(const torch::nn::Module& module) {
  StorageSet seen;
  int64_t total = 0;
  for (const auto& p : module.parameters()) total += seen.add(p);
  return total;
}

ModuleMemory module_memory(const torch::nn::Module& module, const torch::optim::Optimizer* optimizer) {
  ModuleMemory memory;
  StorageSet params, trainable, grads;
  for (const auto& p : module.parameters()) {
    memory.parameter_bytes += params.add(p);
    if (p.requires_grad()) memory.trainable_parameter_bytes += trainable.add(p);
    memory.gradient_bytes += grads.add(p.grad());
  }
  if (optimizer) memory.optimizer_state_bytes = optimizer_state_bytes(*optimizer);
  return memory;
}

int64_t kv_cache_bytes(int64_t batch, int64_t positions, int64_t layers, int64_t kv_heads, int64_t head_dim,
                       torch::ScalarType dtype) {
  if (batch < 0 || positions < 0 || layers < 0 || kv_heads < 0 || head_dim < 0) {
    throw Error("kv_cache_bytes: sizes must be >= 0 (batch " + std::to_string(batch) + ", positions " +
                std::to_string(positions) + ", layers " + std::to_string(layers) + ", kv_heads " +
                std::to_string(kv_heads) + ", head_dim " + std::to_string(head_dim) + ")");
  }
  // Keys and values per layer.
  return 2 * layers * batch * kv_heads * positions * head_dim * static_cast<int64_t>(c10::elementSize(dtype));
}

int64_t kv_cache_bytes(const models::Config& config, int64_t batch, int64_t positions, torch::ScalarType dtype) {
  return kv_cache_bytes(batch, positions, config.num_layers, config.num_kv_heads, config.head_dim, dtype);
}

namespace {

/// The caching allocator of an accelerator, or null when there is none (CPU, or a
/// build without the device's runtime loaded).
c10::DeviceAllocator* device_allocator(const torch::Device& device) {
  if (device.is_cpu()) return nullptr;
  try {
    auto* allocator = c10::getDeviceAllocator(device.type());
    return allocator && allocator->initialized() ? allocator : nullptr;
  } catch (const c10::Error&) {
    return nullptr;
  }
}

c10::DeviceIndex index_of(const torch::Device& device) { return device.has_index() ? device.index() : 0; }

}  // namespace

std::optional<DeviceMemoryStats> device_memory_stats(const torch::Device& device) {
  auto* allocator = device_allocator(device);
  if (!allocator) return std::nullopt;
  const auto stats = allocator->getDeviceStats(index_of(device));
  constexpr auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  DeviceMemoryStats out;
  out.allocated_bytes = stats.allocated_bytes[all].current;
  out.peak_allocated_bytes = stats.allocated_bytes[all].peak;
  out.reserved_bytes = stats.reserved_bytes[all].current;
  out.peak_reserved_bytes = stats.reserved_bytes[all].peak;
  return out;
}

void reset_peak_memory(const torch::Device& device) {
  if (auto* allocator = device_allocator(device)) allocator->resetPeakStats(index_of(device));
}

void release_cached_memory(const torch::Device& device) {
  if (device.is_cpu()) return_freed_host_memory();
  if (auto* allocator = device_allocator(device)) allocator->emptyCache();
}

std::string format_bytes(int64_t bytes) {
  char buffer[32];
  const double b = static_cast<double>(bytes);
  if (bytes >= (int64_t{1} << 30)) {
    std::snprintf(buffer, sizeof buffer, "%.2f GiB", b / (1 << 30));
  } else if (bytes >= (int64_t{1} << 20)) {
    std::snprintf(buffer, sizeof buffer, "%.1f MiB", b / (1 << 20));
  } else if (bytes >= (int64_t{1} << 10)) {
    std::snprintf(buffer, sizeof buffer, "%.1f KiB", b / (1 << 10));
  } else {
    std::snprintf(buffer, sizeof buffer, "%lld B", static_cast<long long>(bytes));
  }
  return buffer;
}

}  // namespace troupe::engine
