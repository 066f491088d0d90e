#pragma once
/// The model side of `troupe serve`: turns checked API requests into prompts
/// (prepare_prompt), runs them on a models::BatchScheduler on a thread of its
/// own (the one thread that touches the model), and hands each request's text to its
/// HTTP handler through a RequestChannel as it is generated.
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <troupe/models/batch_scheduler.hpp>
#include <troupe/models/chat_format.hpp>
#include <troupe/models/tokenizer.hpp>

#include "serve_api.hpp"
#include "serve_prompt.hpp"

namespace troupe::apps::serve {

/// One request's output, from the scheduler's thread to the handler's.
class RequestChannel {
 public:
  struct Update {
    std::string text;           ///< new text since the last wait()
    bool finished = false;
    std::string finish_reason;  ///< "stop" or "length" once finished; "error" when the model failed
    int64_t completion_tokens = 0;
  };
  void add_text(const std::string& piece);
  void finish(const std::string& finish_reason, int64_t completion_tokens);
  /// Blocks until there is new text or the request has finished.
  Update wait();

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::string pending_;
  bool finished_ = false;
  std::string finish_reason_;
  int64_t completion_tokens_ = 0;
};

class ServeEngine {
 public:
  ServeEngine(models::CausalLM model, std::shared_ptr<const models::Tokenizer> tokenizer, models::ChatFormat format,
              models::BatchSchedulerOptions options);
  /// close_and_wait() if not done yet.
  ~ServeEngine();

  struct Started {
    uint64_t id = 0;
    std::shared_ptr<RequestChannel> channel;
    int64_t prompt_tokens = 0;
  };
  /// Builds the prompt and queues the request. Throws ApiError (400) for a prompt that
  /// does not fit the context with max_tokens, naming both lengths.
  Started start(const ApiRequest& request);
  /// Frees the request's row (its client went away).
  void cancel(uint64_t id) { scheduler_->cancel(id); }
  /// Stops taking requests, lets the running ones finish, joins the scheduler thread.
  void close_and_wait();

  /// Positions per request: prompt and generated tokens together.
  int64_t context() const { return scheduler_->context(); }
  int64_t max_batch() const { return scheduler_->max_batch(); }
  int64_t cache_bytes() const { return scheduler_->cache_bytes(); }
  int64_t running() const { return scheduler_->running(); }
  int64_t waiting() const { return scheduler_->waiting(); }
  int64_t cancelled() const { return scheduler_->cancelled(); }
  /// What the model last failed with (a request finished with "error").
  std::string last_error() const { return scheduler_->last_error(); }
  /// Set when the scheduler's thread stopped on an error.
  std::string failure() const;
  models::ChatFormat format() const { return format_; }

 private:
  std::shared_ptr<const models::Tokenizer> tokenizer_;
  models::ChatFormat format_;
  std::vector<int64_t> eos_;
  std::unique_ptr<models::BatchScheduler> scheduler_;
  std::thread thread_;
  mutable std::mutex failure_mutex_;
  std::string failure_;
};

}  // namespace troupe::apps::serve
