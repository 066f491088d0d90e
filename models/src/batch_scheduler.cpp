#include <troupe/models/batch_scheduler.hpp>

#include <algorithm>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/models/tensor_parallel.hpp>

namespace troupe::models {
namespace {

torch::ScalarType cache_dtype(CausalLMImpl& model, const BatchSchedulerOptions& options) {
  return resolve_inference_dtype(model, options.inference_dtype);
}

int64_t context_of(CausalLMImpl& model, const BatchSchedulerOptions& options) {
  const int64_t context = options.context > 0 ? options.context : model.config().max_position_embeddings;
  if (context < 2) throw Error("batch scheduler: a row needs room for at least 2 positions, got " + std::to_string(context));
  return context;
}

/// Rows of `context` positions that fit: max_batch, fewer when max_cache_bytes says so.
int64_t slots_for(CausalLMImpl& model, const BatchSchedulerOptions& options) {
  if (options.max_batch < 1) throw Error("batch scheduler: max_batch must be >= 1, got " + std::to_string(options.max_batch));
  if (options.max_cache_bytes <= 0) return options.max_batch;
  const auto& c = model.config();
  const int64_t row_bytes = 2 * c.num_layers * c.num_kv_heads * c.head_dim * context_of(model, options) *
                            static_cast<int64_t>(c10::elementSize(cache_dtype(model, options)));
  const int64_t fit = options.max_cache_bytes / std::max<int64_t>(1, row_bytes);
  if (fit < 1)
    throw Error("batch scheduler: one row of the KV cache takes " + std::to_string(row_bytes) +
                " bytes, more than the limit of " + std::to_string(options.max_cache_bytes));
  return std::min(options.max_batch, fit);
}

}  // namespace

BatchScheduler::BatchScheduler(CausalLM model, BatchSchedulerOptions options)
    : model_(std::move(model)),
      layout_(std::make_unique<ScopedInferenceLayout>(*model_, cache_dtype(*model_, options))),
      slots_(slots_for(*model_, options)),
      context_(context_of(*model_, options)),
      max_prefill_tokens_(options.max_prefill_tokens),
      cache_(tensor_parallel_cache_config(model_->config(), model_->tensor_parallel_world()), slots_, context_,
             torch::TensorOptions().dtype(cache_dtype(*model_, options)).device(model_->input_embedding_weight().device())) {
  model_->eval();
  // Rows never read positions they did not write, but a path without the decode kernel
  // masks them in SDPA, where stale NaNs would still poison the sums: start from zeros.
  for (int64_t layer = 0; layer < model_->config().num_layers; ++layer) {
    auto storage = cache_.layer_storage(layer);
    storage.keys.zero_();
    storage.values.zero_();
  }
}

BatchScheduler::~BatchScheduler() {
  for (size_t i = rows_.size(); i-- > 0;) remove_row(i, FinishReason::Cancelled);
  std::deque<Waiting> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(waiting_);
  }
  for (auto& w : left)
    if (w.request.on_finish) w.request.on_finish(FinishReason::Cancelled);
}

uint64_t BatchScheduler::submit(BatchRequest request) {
  if (request.prompt_ids.empty()) throw Error("batch scheduler: the prompt has no tokens");
  const auto prompt = static_cast<int64_t>(request.prompt_ids.size());
  if (prompt >= context_)
    throw Error("batch scheduler: a prompt of " + std::to_string(prompt) + " tokens leaves no room in a row of " +
                std::to_string(context_) + " positions");
  if (request.options.max_new_tokens < 1)
    throw Error("batch scheduler: max_new_tokens must be >= 1, got " + std::to_string(request.options.max_new_tokens));
  if (request.options.do_sample && request.options.temperature <= 0)
    throw Error("batch scheduler: the temperature must be positive when sampling");
  std::lock_guard lock(mutex_);
  if (closed_) throw Error("batch scheduler: closed, no new requests");
  const uint64_t id = next_id_++;
  waiting_.push_back({id, std::move(request)});
  wake_.notify_all();
  return id;
}

void BatchScheduler::cancel(uint64_t id) {
  std::lock_guard lock(mutex_);
  cancelled_.insert(id);
  wake_.notify_all();
}

void BatchScheduler::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  wake_.notify_all();
}

int64_t BatchScheduler::running() const {
  std::lock_guard lock(mutex_);
  return running_snapshot_;
}

std::string BatchScheduler::last_error() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

int64_t BatchScheduler::waiting() const {
  std::lock_guard lock(mutex_);
  return static_cast<int64_t>(waiting_.size());
}

std::optional<FinishReason> BatchScheduler::emit(Row& row, int64_t token) {
  row.last_token = token;
  ++row.generated;
  const bool more = row.request.on_token ? row.request.on_token(token) : true;
  if (std::find(row.eos.begin(), row.eos.end(), token) != row.eos.end()) return FinishReason::Stop;
  if (!more) return FinishReason::Stop;
  if (row.generated >= row.request.options.max_new_tokens) return FinishReason::Length;
  if (row.length >= context_) return FinishReason::Length;  // no room for the token's keys and values
  return std::nullopt;
}

bool BatchScheduler::admit(Waiting waiting) {
  auto& model = *model_;
  const auto device = model.input_embedding_weight().device();
  Row row;
  row.id = waiting.id;
  row.request = std::move(waiting.request);
  row.eos = row.request.options.eos_token_ids;
  if (row.eos.empty() && model.config().eos_token_id) row.eos.push_back(*model.config().eos_token_id);
  row.generator = at::globalContext().defaultGenerator(device).clone();
  row.generator.set_current_seed(row.request.options.seed);

  // The prefill runs alone, straight into the row's storage: what generate() computes
  // for this prompt by itself.
  const auto slot = static_cast<int64_t>(rows_.size());
  auto view = cache_.row_view(slot);
  const auto t = static_cast<int64_t>(row.request.prompt_ids.size());
  auto ids = torch::tensor(row.request.prompt_ids, torch::kLong).view({1, t}).to(device);  // (1, T)
  auto mask = torch::ones({1, t}, torch::TensorOptions().dtype(torch::kLong).device(device));  // (1, T)
  auto hidden = model.hidden_states({ids, mask, {}, &view});  // (1, T, E)
  auto logits = model.lm_logits(hidden.select(1, t - 1));     // (1, V)
  const auto token = pick_next_tokens(logits, row.request.options, row.generator).item<int64_t>();
  row.length = t;
  if (auto reason = emit(row, token)) {
    if (row.request.on_finish) row.request.on_finish(*reason);
    return false;
  }
  rows_.push_back(std::move(row));
  return true;
}

void BatchScheduler::decode() {
  auto& model = *model_;
  const auto device = model.input_embedding_weight().device();
  const auto b = static_cast<int64_t>(rows_.size());
  std::vector<int64_t> tokens, lengths;
  for (const auto& row : rows_) {
    tokens.push_back(row.last_token);
    lengths.push_back(row.length);
  }
  cache_.set_row_lengths(lengths);
  const int64_t longest = cache_.length();
  auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  auto ids = torch::tensor(tokens, torch::kLong).view({b, 1}).to(device);           // (B, 1)
  auto positions = torch::tensor(lengths, torch::kLong).view({b, 1}).to(device);    // (B, 1)
  // Row r attends its own positions [0, length_r]: the new token goes at length_r.
  auto mask = (torch::arange(longest + 1, long_opts).view({1, longest + 1}) <= positions).to(torch::kLong);  // (B, L + 1)
  auto hidden = model.hidden_states({ids, mask, positions, &cache_});  // (B, 1, E)
  auto logits = model.lm_logits(hidden.select(1, 0));                 // (B, V)
  ++decode_steps_;
  decode_rows_ += b;

  std::vector<std::optional<FinishReason>> finished(rows_.size());
  for (int64_t r = 0; r < b; ++r) {
    auto& row = rows_[r];
    ++row.length;
    const auto token = pick_next_tokens(logits.narrow(0, r, 1), row.request.options, row.generator).item<int64_t>();
    finished[r] = emit(row, token);
  }
  for (size_t i = rows_.size(); i-- > 0;)
    if (finished[i]) remove_row(i, *finished[i]);
}

void BatchScheduler::remove_row(size_t i, FinishReason reason) {
  auto row = std::move(rows_[i]);
  const size_t last = rows_.size() - 1;
  if (i != last) {
    cache_.copy_row(static_cast<int64_t>(last), static_cast<int64_t>(i), rows_[last].length);
    rows_[i] = std::move(rows_[last]);
  }
  rows_.pop_back();
  if (row.request.on_finish) row.request.on_finish(reason);
}

bool BatchScheduler::step() {
  c10::InferenceMode inference;
  std::set<uint64_t> cancelled;
  std::deque<Waiting> dropped;
  {
    std::lock_guard lock(mutex_);
    cancelled.swap(cancelled_);
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (cancelled.count(it->id)) {
        dropped.push_back(std::move(*it));
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& w : dropped) {
    ++cancelled_count_;
    if (w.request.on_finish) w.request.on_finish(FinishReason::Cancelled);
  }
  for (size_t i = rows_.size(); i-- > 0;) {
    if (!cancelled.count(rows_[i].id)) continue;
    ++cancelled_count_;
    remove_row(i, FinishReason::Cancelled);
  }

  // FIFO: the oldest waiting requests take the free rows, as many prompt tokens as the
  // prefill budget allows (the first one whatever its length).
  int64_t prefilled = 0;
  while (static_cast<int64_t>(rows_.size()) < slots_) {
    Waiting next;
    {
      std::lock_guard lock(mutex_);
      if (waiting_.empty()) break;
      const auto prompt = static_cast<int64_t>(waiting_.front().request.prompt_ids.size());
      if (max_prefill_tokens_ > 0 && prefilled > 0 && prefilled + prompt > max_prefill_tokens_) break;
      prefilled += prompt;
      next = std::move(waiting_.front());
      waiting_.pop_front();
    }
    // A request the model fails on ends alone; the batch goes on.
    auto on_finish = next.request.on_finish;
    try {
      admit(std::move(next));
    } catch (const std::exception& e) {
      {
        std::lock_guard lock(mutex_);
        last_error_ = e.what();
      }
      if (on_finish) on_finish(FinishReason::Error);
    }
  }
  if (!rows_.empty()) {
    try {
      decode();
    } catch (const std::exception& e) {
      {
        std::lock_guard lock(mutex_);
        last_error_ = e.what();
      }
      for (size_t i = rows_.size(); i-- > 0;) remove_row(i, FinishReason::Error);
    }
  }
  std::lock_guard lock(mutex_);
  running_snapshot_ = static_cast<int64_t>(rows_.size());
  return !rows_.empty() || !waiting_.empty();
}

void BatchScheduler::run() {
  while (true) {
    if (step()) continue;
    std::unique_lock lock(mutex_);
    if (closed_ && waiting_.empty()) return;
    wake_.wait(lock, [&] { return !waiting_.empty() || closed_ || !cancelled_.empty(); });
    if (closed_ && waiting_.empty()) return;
  }
}

}  // namespace troupe::models
