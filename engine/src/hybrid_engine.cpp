#include <troupe/engine/hybrid_engine.hpp>

#include <chrono>
#include <cstdio>

#include <ATen/DeviceAccelerator.h>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/train_engine.hpp>

#include "tensor_parallel_group.hpp"

namespace troupe::engine {
namespace {

using Clock = std::chrono::steady_clock;

/// Waits for queued device work so wall times measure the work, not its launch.
void synchronize(const torch::Device& device) {
  if (!device.is_cpu()) at::accelerator::synchronizeDevice(device.has_index() ? device.index() : 0);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// Restores training mode when a scoring call leaves its scope, also by an exception.
class EvalScope {
 public:
  explicit EvalScope(models::CausalLMImpl& model) : model_(model) { model_.eval(); }
  ~EvalScope() { model_.train(true); }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  models::CausalLMImpl& model_;
};

}  // namespace

double SwitchTimings::tokens_per_second() const {
  return generate_seconds > 0 ? static_cast<double>(group_batch * new_tokens) / generate_seconds : 0.0;
}

std::string SwitchTimings::log_line() const {
  char group[64] = "";
  if (tensor_parallel > 1)
    std::snprintf(group, sizeof group, " of %lld on %d tensor-parallel ranks", static_cast<long long>(group_batch),
                  tensor_parallel);
  char buffer[448];
  std::snprintf(buffer, sizeof buffer,
                "hybrid engine: enter %.4f s (%lld layers packed, %s, %lld with LoRA), generate %.4f s (B=%lld%s, "
                "%lld+%lld tokens, %.0f tok/s), leave %.4f s; kv cache %s (%s%s)",
                enter_seconds, static_cast<long long>(packed_layers), format_bytes(packed_bytes).c_str(),
                static_cast<long long>(lora_layers), generate_seconds, static_cast<long long>(batch), group,
                static_cast<long long>(prompt_length), static_cast<long long>(new_tokens), tokens_per_second(),
                leave_seconds, format_bytes(kv_cache_bytes).c_str(), cache_reused ? "reused" : "allocated",
                cache_released ? ", released" : ", kept");
  return buffer;
}

HybridEngine::HybridEngine(models::CausalLM actor, HybridEngineOptions options)
    : model_(std::move(actor)), options_(options) {
  if (!model_) throw Error("HybridEngine: no actor model given");
  model_->train(true);
}

models::KVCache& HybridEngine::cache_for(int64_t batch, int64_t positions, torch::TensorOptions tensor_options,
                                         bool& reused) {
  reused = cache_ && cache_->batch() == batch && cache_->capacity() >= positions &&
           cache_options_.dtype() == tensor_options.dtype() && cache_options_.device() == tensor_options.device();
  if (!reused) {
    cache_.reset();  // free the old one before allocating its successor
    cache_.emplace(models::tensor_parallel_cache_config(model_->config(), tensor_parallel_.world), batch, positions,
                   tensor_options);
    cache_options_ = tensor_options;
  }
  return *cache_;
}

void HybridEngine::release_cache_locked() {
  const bool had_cache = cache_.has_value() || layout_.bytes() > 0;
  const auto device = cache_options_.device();
  cache_.reset();
  layout_.release();
  if (had_cache) release_cached_memory(device);
}

void HybridEngine::set_tensor_parallel(models::TensorParallelRank group) {
  models::check_tensor_parallel(model_->config(), group.world, "hybrid engine");
  if (group.world > 1 && !group.all_reduce_sum) throw Error("hybrid engine: a tensor-parallel group needs an all-reduce");
  std::lock_guard<std::mutex> lock(*model_mutex_);
  release_cache_locked();  // sized for the old layout's heads
  tensor_parallel_ = std::move(group);
}

models::GenerationResult HybridEngine::generate(const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                                                const models::GenerationOptions& options) {
  TORCH_CHECK(prompt_ids.dim() == 2, "HybridEngine::generate: prompt_ids must be (B, T0), got ", prompt_ids.sizes());
  TORCH_CHECK(prompt_mask.sizes() == prompt_ids.sizes(), "HybridEngine::generate: prompt_mask ", prompt_mask.sizes(),
              " must match prompt_ids ", prompt_ids.sizes());
  std::lock_guard<std::mutex> lock(*model_mutex_);
  auto& model = *model_;
  const auto device = prompt_ids.device();
  const auto& group = tensor_parallel_;
  const bool parallel = group.world > 1;
  SwitchTimings timings;
  timings.batch = prompt_ids.size(0);
  timings.prompt_length = prompt_ids.size(1);
  timings.tensor_parallel = group.world;

  // A tensor-parallel group generates every rank's prompts as one batch.
  GroupPrompts gathered;
  auto run_options = options;
  if (parallel) {
    gathered = gather_group_prompts(prompt_ids, prompt_mask, group);
    run_options.seed = group_seed(options.seed, group);
  } else {
    gathered.ids = prompt_ids;
    gathered.mask = prompt_mask;
  }
  timings.group_batch = gathered.ids.size(0);

  // Into the inference layout: eval mode, this rank's slices when tensor-parallel, and
  // the packed copies of what each layer computes with (adapters folded in).
  auto start = Clock::now();
  models::GenerationResult result;
  // Under ZeRO stage 3 the layers are whole (or, tensor-parallel, this rank's slices,
  // resharded from the chunks) for the whole call; released last.
  std::optional<Zero3Partition::FullParameters> whole;
  std::optional<Zero3Partition::TensorParallelSlices> slices;
  auto leave = [&] {
    layout_.leave(model);
    if (parallel) models::leave_tensor_parallel(model);
    model.train(true);
    mode_ = EngineMode::Training;
  };
  try {
    if (zero3_) {
      const int64_t received = zero3_->received_bytes();
      if (parallel) {
        slices.emplace(zero3_->gather_tensor_parallel_slices(group));
      } else {
        whole.emplace(zero3_->gather_full_parameters());
      }
      timings.reshard_seconds = seconds_since(start);
      timings.reshard_bytes = zero3_->received_bytes() - received;
    }
    model.eval();
    if (parallel && zero3_) {
      models::enter_tensor_parallel_slices(model, group);
    } else if (parallel) {
      models::enter_tensor_parallel(model, group);
    }
    if (options_.pack_inference_weights) layout_.enter(model, options_.inference_dtype);
    run_options.pack_weights = options_.pack_inference_weights;
    mode_ = EngineMode::Inference;
    synchronize(device);
    timings.enter_seconds = seconds_since(start);
    timings.packed_layers = layout_.layers();
    timings.lora_layers = layout_.lora_layers();
    timings.packed_bytes = layout_.bytes();

    start = Clock::now();
    const int64_t positions = gathered.ids.size(1) + options.max_new_tokens;
    // Keys and values in the inference dtype, as the packed weights (unpacked: the model's).
    const auto cache_dtype = options_.pack_inference_weights ? options_.inference_dtype
                                                              : models::resolve_inference_dtype(model, std::nullopt);
    auto cache_options = torch::TensorOptions().dtype(cache_dtype).device(device);
    auto& kept = cache_for(timings.group_batch, positions, cache_options, timings.cache_reused);
    timings.kv_cache_bytes = kept.bytes();
    models::KVCache run = kept;  // shares the kept tensors; the copy starts empty
    auto inference = models::generate(model, gathered.ids, gathered.mask, run_options, run);
    if (parallel) {
      require_same_tokens(inference.sequences, group);
      inference = own_rows(inference, gathered);
    }
    // Plain tensors for the training side: inference tensors cannot be saved for backward.
    result.sequences = inference.sequences.clone();            // (B, T0 + N)
    result.attention_mask = inference.attention_mask.clone();  // (B, T0 + N)
    result.prompt_length = inference.prompt_length;
    synchronize(device);
    timings.generate_seconds = seconds_since(start);
  } catch (...) {
    // Training must be able to go on: layers whole and unpacked, and the cache and the
    // packed copies freed (an out-of-memory error is the likeliest failure here).
    leave();
    release_cache_locked();
    throw;
  }

  start = Clock::now();
  leave();
  if (options_.release_inference_cache) {
    release_cache_locked();
    timings.cache_released = true;
  }
  synchronize(device);
  timings.leave_seconds = seconds_since(start);
  timings.new_tokens = result.sequences.size(1) - timings.prompt_length;

  last_timings_ = timings;
  history_.push_back(timings);
  if (options_.log_switches) log::debug(timings.log_line());
  return result;
}

void HybridEngine::train_mode() {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  torch::NoGradGuard no_grad;
  // generate() never fuses adapters into the training weights; someone else may have.
  for (auto& [name, linear] : model_->linear_layers()) linear->unfuse_lora();
  model_->train(true);
  mode_ = EngineMode::Training;
}

torch::Tensor HybridEngine::train_step(torch::optim::Optimizer& optimizer,
                                       const std::function<torch::Tensor(models::CausalLMImpl&)>& loss_fn) {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  model_->train(true);
  optimizer.zero_grad();
  auto loss = loss_fn(*model_);
  TORCH_CHECK(loss.numel() == 1 && loss.requires_grad(),
              "HybridEngine::train_step: the loss must be a scalar with autograd, got ", loss.sizes());
  loss.backward();
  optimizer.step();
  return loss.detach();
}

void HybridEngine::run_training(const std::function<void(models::CausalLMImpl&)>& body) {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  model_->train(true);
  body(*model_);
}

torch::Tensor HybridEngine::forward_train(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  model_->train(true);
  return model_->forward(input_ids, attention_mask);  // (B, T, V)
}

torch::Tensor HybridEngine::train_logprobs(const torch::Tensor& sequences, const torch::Tensor& mask,
                                           const ScoringOptions& options) {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  model_->train(true);
  return sequence_logprobs(*model_, sequences, mask, options);  // (B, T - 1)
}

torch::Tensor HybridEngine::score_logprobs(const torch::Tensor& sequences, const torch::Tensor& mask,
                                           const ScoringOptions& options) {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  torch::NoGradGuard no_grad;
  EvalScope eval(*model_);
  AutocastScope autocast(sequences.device().type(), options_.compute_dtype);
  return sequence_logprobs(*model_, sequences, mask, options);  // (B, T - 1)
}

int64_t HybridEngine::inference_cache_bytes() const {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  return cache_ ? cache_->bytes() : 0;
}

int64_t HybridEngine::inference_weight_bytes() const {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  return layout_.bytes();
}

void HybridEngine::release_inference_cache() {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  release_cache_locked();
}

}  // namespace troupe::engine
