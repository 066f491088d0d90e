#include "serve_http.hpp"

#include <httplib.h>

#include <chrono>
#include <ctime>
#include <functional>
#include <memory>
#include <thread>

#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>

namespace troupe::apps::serve {
namespace {

using json = nlohmann::json;

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(e.body()), "application/json");
}

/// Compares without an early exit, so timing does not tell how much of a key matched.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % std::max<size_t>(1, b.size())]);
  return diff == 0;
}

std::string status_message(int status) {
  switch (status) {
    case 404: return "no such route";
    case 405: return "method not allowed";
    case 413: return "the request body is too large";
    case 414: return "the request URI is too long";
    default: return "the request could not be served";
  }
}

/// Counts requests in flight, so a stop can wait for them.
class InFlight {
 public:
  explicit InFlight(std::atomic<int>& count) : count_(&count) { ++*count_; }
  ~InFlight() {
    if (count_) --*count_;
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<int>* count_;
};

/// A streamed request's state, shared by the content provider and its releaser.
struct StreamState {
  ServeEngine::Started started;
  CompletionInfo info;
  bool chat = false;
  bool include_usage = false;
  bool first = true;
  bool done = false;
  std::unique_ptr<InFlight> in_flight;
};

bool write_event(httplib::DataSink& sink, const nlohmann::ordered_json& value) {
  const auto event = "data: " + dump(value) + "\n\n";
  return sink.write(event.data(), event.size());
}

class Routes {
 public:
  Routes(ServeEngine& engine, const HttpOptions& options) : engine_(engine), options_(options) {}

  std::atomic<int> in_flight{0};
  std::atomic<bool> draining{false};

  void install(httplib::Server& server) {
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(chat_page_html(), "text/html; charset=utf-8");
    });
    server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const auto failure = engine_.failure();
      nlohmann::ordered_json body{{"status", failure.empty() ? (draining ? "draining" : "ok") : "failed"},
                {"running", engine_.running()},
                {"waiting", engine_.waiting()},
                {"cancelled", engine_.cancelled()}};
      if (!failure.empty()) {
        res.status = 500;
        body["error"] = failure;
      }
      res.set_content(dump(body), "application/json");
    });
    server.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, [&] {
        nlohmann::ordered_json model{{"id", options_.served_model_name},
                   {"object", "model"},
                   {"created", started_},
                   {"owned_by", "troupe"},
                   {"max_model_len", engine_.context()}};
        res.set_content(dump(nlohmann::ordered_json{{"object", "list"}, {"data", nlohmann::ordered_json::array({model})}}),
                        "application/json");
      });
    });
    server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      complete(req, res, Endpoint::ChatCompletions);
    });
    server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      complete(req, res, Endpoint::Completions);
    });
    // Routes and errors httplib answers itself (404, 413, ...) get OpenAI's error object too.
    server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, ApiError(res.status, status_message(res.status),
                               res.status >= 500 ? "server_error" : "invalid_request_error"));
      return httplib::Server::HandlerResponse::Handled;
    }));
    server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      send_error(res, ApiError(500, "internal error", "server_error"));
    });
  }

 private:
  /// Runs `fn` unless the server is draining or the key is missing; any exception
  /// becomes an error response.
  void guarded(const httplib::Request& req, httplib::Response& res, const std::function<void()>& fn) {
    try {
      if (draining) throw ApiError(503, "the server is shutting down", "server_error");
      if (!options_.api_key.empty() &&
          !same_secret(req.get_header_value("Authorization"), "Bearer " + options_.api_key))
        throw ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'",
                       "invalid_request_error", std::nullopt, "invalid_api_key");
      if (req.body.size() > options_.max_body_bytes)
        throw ApiError(413, "the request body is " + std::to_string(req.body.size()) + " bytes, more than the limit of " +
                                std::to_string(options_.max_body_bytes));
      fn();
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const std::exception& e) {
      log::error("troupe serve: ", req.method, " ", req.path, ": ", e.what());
      send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error"));
    }
  }

  void complete(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    auto in_flight_guard = std::make_unique<InFlight>(in_flight);
    guarded(req, res, [&] {
      const bool chat = endpoint == Endpoint::ChatCompletions;
      auto request = parse_request(endpoint, req.body, engine_.context() - 1);
      if (!request.model.empty() && request.model != options_.served_model_name)
        throw ApiError(404,
                       "the model '" + request.model + "' does not exist; this server serves '" +
                           options_.served_model_name + "'",
                       "invalid_request_error", "model", "model_not_found");
      auto started = engine_.start(request);
      CompletionInfo info;
      info.id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(started_) + "-" + std::to_string(started.id);
      info.created = static_cast<int64_t>(std::time(nullptr));
      info.model = options_.served_model_name;
      if (!request.stream) {
        std::string text;
        RequestChannel::Update update;
        do {
          update = started.channel->wait();
          text += update.text;
        } while (!update.finished);
        if (update.finish_reason == "error")
          throw ApiError(500, "generation failed: " + engine_.last_error(), "server_error");
        const auto body = chat ? chat_completion(info, text, update.finish_reason, started.prompt_tokens,
                                                 update.completion_tokens)
                               : text_completion(info, text, update.finish_reason, started.prompt_tokens,
                                                 update.completion_tokens);
        res.set_content(dump(body), "application/json");
        return;
      }
      auto state = std::make_shared<StreamState>();
      state->started = started;
      state->info = info;
      state->chat = chat;
      state->include_usage = request.include_usage;
      state->in_flight = std::move(in_flight_guard);
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider(
          "text/event-stream",
          [state, this](size_t, httplib::DataSink& sink) { return stream_step(*state, sink, engine_); },
          [state, this](bool) {
            // A client gone mid-stream: free its row now rather than generating on.
            if (!state->done) engine_.cancel(state->started.id);
            state->in_flight.reset();
          });
    });
  }

  /// One call of the content provider: the first chunk, new text, or the end.
  static bool stream_step(StreamState& s, httplib::DataSink& sink, ServeEngine& engine) {
    if (s.done) {
      sink.done();
      return true;
    }
    if (s.first && s.chat) {
      s.first = false;
      return write_event(sink, chat_chunk(s.info, std::string(), /*first=*/true, std::nullopt));
    }
    auto update = s.started.channel->wait();
    bool ok = true;
    if (!update.text.empty())
      ok = write_event(sink, s.chat ? chat_chunk(s.info, update.text, false, std::nullopt)
                                    : text_chunk(s.info, update.text, std::nullopt));
    if (ok && update.finished && update.finish_reason == "error") {
      s.done = true;
      ok = write_event(sink, ApiError(500, "generation failed: " + engine.last_error(), "server_error").body());
      static const std::string kDone = "data: [DONE]\n\n";
      if (ok) ok = sink.write(kDone.data(), kDone.size());
      if (ok) sink.done();
      return ok;
    }
    if (ok && update.finished) {
      s.done = true;
      ok = write_event(sink, s.chat ? chat_chunk(s.info, std::nullopt, false, update.finish_reason)
                                    : text_chunk(s.info, "", update.finish_reason));
      if (ok && s.include_usage)
        ok = write_event(sink, usage_chunk(s.info, s.chat, s.started.prompt_tokens, update.completion_tokens));
      static const std::string kDone = "data: [DONE]\n\n";
      if (ok) ok = sink.write(kDone.data(), kDone.size());
      if (ok) sink.done();
    }
    return ok;
  }

  ServeEngine& engine_;
  const HttpOptions& options_;
  const int64_t started_ = static_cast<int64_t>(std::time(nullptr));
};

}  // namespace

void serve_http(ServeEngine& engine, const HttpOptions& options, std::atomic<bool>& stop,
                const std::function<void(int)>& on_listening) {
  httplib::Server server;
  const int threads = options.threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  // httplib refuses far larger bodies before reading them; the handlers answer 413 with
  // OpenAI's error object for anything over the limit.
  server.set_payload_max_length(options.max_body_bytes * 4 + 4096);
  Routes routes(engine, options);
  routes.install(server);

  int port = options.port;
  if (port == 0) {
    port = server.bind_to_any_port(options.host);
    if (port < 0) throw Error("troupe serve: cannot bind " + options.host + " to a free port");
  } else if (!server.bind_to_port(options.host, port)) {
    throw Error("troupe serve: cannot bind " + options.host + ":" + std::to_string(port) +
                " (in use, or not an address of this machine)");
  }
  std::thread watcher([&] {
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // Drain: new requests get 503; the ones in flight run to their end.
    routes.draining = true;
    while (routes.in_flight > 0 || engine.running() > 0 || engine.waiting() > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    server.stop();
  });
  if (on_listening) on_listening(port);
  const bool ok = server.listen_after_bind();
  stop = true;  // listen_after_bind may also end by itself: let the watcher go
  watcher.join();
  if (!ok && !routes.draining) throw Error("troupe serve: the HTTP server stopped unexpectedly");
}

}  // namespace troupe::apps::serve
