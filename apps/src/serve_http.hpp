#pragma once
/// The HTTP side of `troupe serve` on cpp-httplib: the OpenAI-compatible routes, the
/// chat page, API keys, body limits, server-sent event streams, and draining on stop.
#include <atomic>
#include <cstddef>
#include <functional>
#include <string>

#include "serve_engine.hpp"

namespace troupe::apps::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;             ///< empty: no key needed
  std::string served_model_name;
  size_t max_body_bytes = 1 << 20; ///< larger bodies get 413
  int threads = 32;                ///< HTTP worker threads (a streaming request holds one)
};

/// Serves until `stop` becomes true, then answers new requests with 503, lets the
/// requests in flight finish and returns. Throws troupe::Error when it cannot bind.
/// `on_listening` is called once the port is bound (with the port, useful for port 0).
void serve_http(ServeEngine& engine, const HttpOptions& options, std::atomic<bool>& stop,
                const std::function<void(int)>& on_listening);

/// The chat page served at "/": one self-contained HTML file (serve_page.cpp).
const char* chat_page_html();

}  // namespace troupe::apps::serve
