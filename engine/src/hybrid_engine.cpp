#include <troupe/engine/hybrid_engine.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>

#include <ATen/DeviceAccelerator.h>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/engine/hybrid_memory.hpp>

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

/// What entering inference changed, so leaving can undo exactly that.
struct InferenceState {
  std::vector<models::Linear> fused;   // layers whose adapter is folded in
  std::vector<torch::Tensor> backups;  // their weights before fusing (host), when exact
};

/// Eval mode, then each live adapter folded into its weight (after a host copy of the
/// weight when the unfuse must be exact).
InferenceState enter_inference(models::CausalLMImpl& model, const HybridEngineOptions& options) {
  InferenceState state;
  model.eval();
  if (!options.fuse_lora) return state;
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : model.linear_layers()) {
    // A disabled adapter contributes nothing, so folding it in would change the model.
    if (!linear->has_lora() || linear->lora_fused() || !linear->lora_enabled()) continue;
    if (options.exact_unfuse) {
      const auto& w = linear->weight;
      auto host = torch::empty(w.sizes(), w.options().device(torch::kCPU).pinned_memory(w.is_cuda()));
      host.copy_(w);
      state.backups.push_back(host);
    }
    linear->fuse_lora();
    state.fused.push_back(linear);
  }
  return state;
}

/// Adapters out (bit-exact from the backups when taken), training mode back on.
void leave_inference(models::CausalLMImpl& model, InferenceState& state) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < state.fused.size(); ++i) {
    auto& linear = state.fused[i];
    linear->unfuse_lora();
    if (i < state.backups.size()) linear->weight.copy_(state.backups[i]);
  }
  state = {};
  model.train(true);
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
  char buffer[384];
  std::snprintf(buffer, sizeof buffer,
                "hybrid engine: fuse %.4f s (%lld layers), generate %.4f s (B=%lld%s, %lld+%lld tokens, %.0f tok/s), "
                "unfuse %.4f s; kv cache %s (%s%s)",
                fuse_seconds, static_cast<long long>(fused_layers), generate_seconds, static_cast<long long>(batch), group,
                static_cast<long long>(prompt_length), static_cast<long long>(new_tokens), tokens_per_second(),
                unfuse_seconds, format_bytes(kv_cache_bytes).c_str(), cache_reused ? "reused" : "allocated",
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
  const bool had_cache = cache_.has_value();
  const auto device = cache_options_.device();
  cache_.reset();
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

  auto start = Clock::now();
  auto state = enter_inference(model, options_);
  mode_ = EngineMode::Inference;
  synchronize(device);
  timings.fuse_seconds = seconds_since(start);
  timings.fused_layers = static_cast<int64_t>(state.fused.size());

  models::GenerationResult result;
  try {
    start = Clock::now();
    if (parallel) models::enter_tensor_parallel(model, group);
    const int64_t positions = gathered.ids.size(1) + options.max_new_tokens;
    auto cache_options = torch::TensorOptions().dtype(model.input_embedding_weight().scalar_type()).device(device);
    auto& kept = cache_for(timings.group_batch, positions, cache_options, timings.cache_reused);
    timings.kv_cache_bytes = kept.bytes();
    models::KVCache run = kept;  // shares the kept tensors; the copy starts empty
    auto inference = models::generate(model, gathered.ids, gathered.mask, run_options, run);
    if (parallel) {
      models::leave_tensor_parallel(model);
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
    // Training must be able to go on: weights whole and back, and the cache freed (an
    // out-of-memory error is the likeliest failure here).
    models::leave_tensor_parallel(model);
    leave_inference(model, state);
    mode_ = EngineMode::Training;
    release_cache_locked();
    throw;
  }

  start = Clock::now();
  leave_inference(model, state);
  mode_ = EngineMode::Training;
  if (options_.release_inference_cache) {
    release_cache_locked();
    timings.cache_released = true;
  }
  synchronize(device);
  timings.unfuse_seconds = seconds_since(start);
  timings.new_tokens = result.sequences.size(1) - timings.prompt_length;

  last_timings_ = timings;
  history_.push_back(timings);
  if (options_.log_switches) std::clog << timings.log_line() << '\n';
  return result;
}

void HybridEngine::train_mode() {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  torch::NoGradGuard no_grad;
  // generate() never leaves adapters fused; someone else may have.
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
  return sequence_logprobs(*model_, sequences, mask, options);  // (B, T - 1)
}

int64_t HybridEngine::inference_cache_bytes() const {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  return cache_ ? cache_->bytes() : 0;
}

void HybridEngine::release_inference_cache() {
  std::lock_guard<std::mutex> lock(*model_mutex_);
  release_cache_locked();
}

}  // namespace troupe::engine
