#pragma once
/// Memory accounting for the step-3 summary: what a module's parameters, gradients and
/// optimizer states take, what a generation's KV cache will take, and (on CUDA) what the
/// device allocator holds at its peak.
#include <cstdint>
#include <optional>
#include <string>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

namespace troupe::models {
struct Config;
}

namespace troupe::engine {

/// Bytes a module holds, each tensor storage counted once (tied weights share one).
struct ModuleMemory {
  int64_t parameter_bytes = 0;
  int64_t trainable_parameter_bytes = 0;  ///< parameters with requires_grad
  int64_t gradient_bytes = 0;             ///< defined .grad() tensors
  int64_t optimizer_state_bytes = 0;      ///< 0 unless an optimizer was given
  int64_t total() const { return parameter_bytes + gradient_bytes + optimizer_state_bytes; }
};

/// Sums the bytes of `module`'s parameters and gradients and, when given, the states
/// `optimizer` keeps for them (torch::optim's Adam, AdamW, SGD, RMSprop, Adagrad and
/// LBFGS states). Throws troupe::Error for an optimizer state of another type, naming it.
ModuleMemory module_memory(const torch::nn::Module& module, const torch::optim::Optimizer* optimizer = nullptr);

/// Bytes of the tensors `optimizer` keeps as per-parameter state.
int64_t optimizer_state_bytes(const torch::optim::Optimizer& optimizer);

/// Bytes of the parameters of `module`, each storage counted once.
int64_t parameter_bytes(const torch::nn::Module& module);

/// Bytes of a KV cache for `batch` sequences of `positions` positions: keys and values
/// of (batch, kv_heads, positions, head_dim) per layer, as models::KVCache allocates.
int64_t kv_cache_bytes(int64_t batch, int64_t positions, int64_t layers, int64_t kv_heads, int64_t head_dim,
                       torch::ScalarType dtype);
/// The same for a model config.
int64_t kv_cache_bytes(const models::Config& config, int64_t batch, int64_t positions, torch::ScalarType dtype);

/// What the caching allocator of an accelerator reports, in bytes.
struct DeviceMemoryStats {
  int64_t allocated_bytes = 0;
  int64_t peak_allocated_bytes = 0;
  int64_t reserved_bytes = 0;
  int64_t peak_reserved_bytes = 0;
};

/// The allocator's statistics of `device`; nullopt on CPU (no caching allocator there).
std::optional<DeviceMemoryStats> device_memory_stats(const torch::Device& device);

/// Starts a new peak-measuring window on `device` (no-op on CPU).
void reset_peak_memory(const torch::Device& device);

/// Hands the allocator's cached, unused blocks of `device` back to the driver, so
/// another phase (or process) can use them; on the CPU, the pages of freed heap
/// blocks back to the system (host_memory.hpp).
void release_cached_memory(const torch::Device& device);

/// "1.23 GiB", "456.0 MiB", "789 B": for log lines and summary tables.
std::string format_bytes(int64_t bytes);

}  // namespace troupe::engine
