#pragma once
/// Continuous batching (iteration-level scheduling, as Orca, vLLM and llama.cpp's
/// server do): requests join the running decode batch between steps, after a prefill
/// of their own, and leave it when they finish. Each running request owns a row of a
/// KV cache with per-row lengths (kv_cache.hpp); decode steps run every row through
/// the inference layout and the decode kernels at once.
///
/// A row's tokens do not depend on the other rows: its prefill runs alone (batch 1, as
/// generate() runs a single prompt), and every op of a decode step computes a row from
/// that row only (decode_linear and decode_attention keep a row's arithmetic the same
/// whatever M is; argmax and sampling are per row, each request with its own seeded
/// generator). So a greedy or seeded answer equals generate() on that prompt alone, bit
/// for bit, on the CPU kernels.
///
/// One thread owns the model and calls step() (or run()); submit(), cancel() and
/// close() may be called from any thread.
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <troupe/models/causal_lm.hpp>
#include <troupe/models/generation.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/models/kv_cache.hpp>

namespace troupe::models {

enum class FinishReason {
  Stop,       ///< an EOS token, or on_token asked to stop (a stop string)
  Length,     ///< max_new_tokens reached, or the row's cache is full
  Cancelled,  ///< cancel() (a client gone), or the scheduler was destroyed first
  Error,      ///< the model threw: last_error() says what; the other requests go on
};

struct BatchRequest {
  std::vector<int64_t> prompt_ids;
  /// max_new_tokens, sampling and seed, eos_token_ids (empty = the config's eos). The
  /// inference dtype is the scheduler's.
  GenerationOptions options;
  /// Called on the scheduler's thread with each new token (an EOS included); returning
  /// false ends the request with FinishReason::Stop.
  std::function<bool(int64_t token)> on_token;
  /// Called once on the scheduler's thread when the request leaves (also when it never
  /// ran: cancelled while waiting).
  std::function<void(FinishReason reason)> on_finish;
};

struct BatchSchedulerOptions {
  int64_t max_batch = 8;            ///< rows decoded together at most
  int64_t context = 0;              ///< positions per row; 0 = the model's max_position_embeddings
  int64_t max_cache_bytes = 0;      ///< fewer rows when the cache would exceed it; 0 = no limit
  /// Prompt tokens prefilled between two decode steps at most, so a burst of newcomers
  /// stalls the running rows for less: whole prompts (a prompt is never split, which
  /// would change its bits), at least one per step. 0 = no limit.
  int64_t max_prefill_tokens = 0;
  std::optional<torch::ScalarType> inference_dtype;  ///< unset: bf16 for a bf16 model, else fp32
};

class BatchScheduler {
 public:
  /// Packs the model's inference layout (unless one is attached) and allocates the KV
  /// cache: max_batch rows of `context` positions, fewer if max_cache_bytes says so.
  BatchScheduler(CausalLM model, BatchSchedulerOptions options);
  /// Ends the requests left (running or waiting) with FinishReason::Cancelled: their
  /// on_finish runs, so what it writes to must outlive the scheduler.
  ~BatchScheduler();
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  /// Queues a request (FIFO) and returns its id. Throws troupe::Error when closed, for
  /// an empty prompt, a prompt that leaves no room in a row, or max_new_tokens < 1.
  uint64_t submit(BatchRequest request);
  /// Ends a request at the next step, freeing its row; unknown ids are ignored.
  void cancel(uint64_t id);
  /// Stops accepting requests; run() returns once the accepted ones have finished.
  void close();

  /// One iteration: drops cancelled requests, admits waiting ones into free rows (FIFO,
  /// each prefilled alone, its first token picked), then one decode step over every
  /// running row. Returns whether requests remain (running or waiting).
  bool step();
  /// step() until close() has been called and nothing remains; waits while idle.
  void run();

  int64_t max_batch() const { return slots_; }
  int64_t context() const { return context_; }
  int64_t cache_bytes() const { return cache_.bytes(); }
  /// Requests decoding now / waiting for a row (thread-safe snapshots).
  int64_t running() const;
  int64_t waiting() const;
  /// Decode steps run so far and the rows they held in total (rows / steps = mean batch).
  int64_t decode_steps() const { return decode_steps_; }
  int64_t decode_rows() const { return decode_rows_; }
  /// Requests ended by cancel() so far (thread-safe).
  int64_t cancelled() const { return cancelled_count_; }
  /// What the model last threw (FinishReason::Error), or empty (thread-safe).
  std::string last_error() const;

 private:
  struct Row {
    uint64_t id = 0;
    BatchRequest request;
    std::vector<int64_t> eos;
    at::Generator generator;
    int64_t last_token = 0;
    int64_t generated = 0;
    int64_t length = 0;  // positions cached
  };
  struct Waiting {
    uint64_t id;
    BatchRequest request;
  };

  /// Prefills a waiting request into row rows_.size(); returns whether it keeps running.
  bool admit(Waiting waiting);
  /// Hands `token` to the row; returns the reason it finishes, if it does.
  std::optional<FinishReason> emit(Row& row, int64_t token);
  void decode();
  /// Ends row i: its last row moves into its place.
  void remove_row(size_t i, FinishReason reason);

  CausalLM model_;
  std::unique_ptr<ScopedInferenceLayout> layout_;
  int64_t slots_ = 0;
  int64_t context_ = 0;
  int64_t max_prefill_tokens_ = 0;
  KVCache cache_;
  std::vector<Row> rows_;  // rows_[i] lives in cache row i

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Waiting> waiting_;
  std::set<uint64_t> cancelled_;
  uint64_t next_id_ = 1;
  bool closed_ = false;
  int64_t running_snapshot_ = 0;
  int64_t decode_steps_ = 0, decode_rows_ = 0;
  std::atomic<int64_t> cancelled_count_{0};
  std::string last_error_;  // under mutex_
};

}  // namespace troupe::models
