#include "serve_engine.hpp"

#include <random>

#include <troupe/common/log.hpp>
#include <troupe/models/text_stream.hpp>

namespace troupe::apps::serve {

void RequestChannel::add_text(const std::string& piece) {
  if (piece.empty()) return;
  std::lock_guard lock(mutex_);
  pending_ += piece;
  ready_.notify_all();
}

void RequestChannel::finish(const std::string& finish_reason, int64_t completion_tokens) {
  std::lock_guard lock(mutex_);
  finished_ = true;
  finish_reason_ = finish_reason;
  completion_tokens_ = completion_tokens;
  ready_.notify_all();
}

RequestChannel::Update RequestChannel::wait() {
  std::unique_lock lock(mutex_);
  ready_.wait(lock, [&] { return !pending_.empty() || finished_; });
  Update update;
  update.text.swap(pending_);
  update.finished = finished_;
  update.finish_reason = finish_reason_;
  update.completion_tokens = completion_tokens_;
  return update;
}

ServeEngine::ServeEngine(models::CausalLM model, std::shared_ptr<const models::Tokenizer> tokenizer,
                         models::ChatFormat format, models::BatchSchedulerOptions options)
    : tokenizer_(std::move(tokenizer)), format_(format) {
  // EOS as TextGenerator picks it: the tokenizer's, else the config's.
  if (auto eos = tokenizer_->eos_token_id()) eos_.push_back(*eos);
  else if (model->config().eos_token_id) eos_.push_back(*model->config().eos_token_id);
  scheduler_ = std::make_unique<models::BatchScheduler>(std::move(model), options);
  thread_ = std::thread([this] {
    try {
      scheduler_->run();
    } catch (const std::exception& e) {
      log::error("troupe serve: the scheduler stopped: ", e.what());
      std::lock_guard lock(failure_mutex_);
      failure_ = e.what();
    }
  });
}

ServeEngine::~ServeEngine() { close_and_wait(); }

void ServeEngine::close_and_wait() {
  scheduler_->close();
  if (thread_.joinable()) thread_.join();
}

std::string ServeEngine::failure() const {
  std::lock_guard lock(failure_mutex_);
  return failure_;
}

ServeEngine::Started ServeEngine::start(const ApiRequest& request) {
  const bool chat = request.endpoint == Endpoint::ChatCompletions;
  auto prompt = prepare_prompt(request, *tokenizer_, format_, scheduler_->context());
  const auto prompt_tokens = static_cast<int64_t>(prompt.ids.size());

  models::BatchRequest batch;
  batch.prompt_ids = std::move(prompt.ids);
  auto& o = batch.options;
  o.max_new_tokens = prompt.max_new_tokens;
  o.do_sample = request.temperature > 0.0;
  o.temperature = o.do_sample ? request.temperature : 1.0;
  o.top_k = request.top_k;
  o.top_p = request.top_p;
  o.seed = request.seed ? *request.seed : std::random_device{}();
  // No token id is -1: ignore_eos leaves only max_tokens and stop strings to end it.
  o.eos_token_ids = request.ignore_eos ? std::vector<int64_t>{-1} : eos_;

  auto stream = std::make_shared<models::TextStream>(tokenizer_, prompt.stop, /*trim=*/chat);
  auto channel = std::make_shared<RequestChannel>();
  batch.on_token = [stream, channel](int64_t token) {
    channel->add_text(stream->push(token));
    return !stream->stopped();
  };
  batch.on_finish = [stream, channel](models::FinishReason reason) {
    channel->add_text(stream->finish());
    channel->finish(reason == models::FinishReason::Error ? "error"
                                                           : finish_reason_name(reason == models::FinishReason::Length),
                    static_cast<int64_t>(stream->ids().size()));
  };
  Started started;
  started.prompt_tokens = prompt_tokens;
  started.channel = channel;
  try {
    started.id = scheduler_->submit(std::move(batch));
  } catch (const std::exception& e) {
    throw ApiError(503, std::string("not accepting requests: ") + e.what(), "server_error");
  }
  return started;
}

}  // namespace troupe::apps::serve
