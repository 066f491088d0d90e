#pragma once
/// The OpenAI-compatible API's requests and responses as plain data: parsing and
/// checking request bodies (errors as OpenAI's error object), and the JSON of
/// completions, chat completions and their stream chunks (fields in OpenAI's order).
/// No HTTP and no model here.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/models/chat_format.hpp>

namespace troupe::apps::serve {

/// An error the client caused (or a server one), as OpenAI reports it:
/// {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::optional<std::string> param = std::nullopt, std::optional<std::string> code = std::nullopt)
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)), code(std::move(code)) {}
  int status;
  std::string type;
  std::optional<std::string> param;
  std::optional<std::string> code;
  nlohmann::ordered_json body() const;
};

enum class Endpoint { ChatCompletions, Completions };

/// One request of either endpoint, checked.
struct ApiRequest {
  Endpoint endpoint = Endpoint::ChatCompletions;
  std::string model;                          ///< empty when the client named none
  std::vector<models::ChatMessage> messages;  ///< chat
  std::string prompt;                         ///< completions, as text
  std::vector<int64_t> prompt_ids;            ///< completions given as token ids
  std::optional<int64_t> max_tokens;          ///< unset: the room left in the context (chat) or 16
  double temperature = 1.0;                   ///< 0 = greedy
  double top_p = 1.0;
  int64_t top_k = 0;
  std::vector<std::string> stop;
  std::optional<uint64_t> seed;
  bool stream = false;
  bool include_usage = false;                 ///< stream_options.include_usage
  bool ignore_eos = false;                    ///< vLLM's extension: generate max_tokens whatever comes
};

/// Parses a request body; throws ApiError (400) naming the field for malformed JSON,
/// a wrong type or a value out of range. `max_tokens_limit` bounds max_tokens.
ApiRequest parse_request(Endpoint endpoint, const std::string& body, int64_t max_tokens_limit);

/// What the client gets back, shared by whole answers and streams.
struct CompletionInfo {
  std::string id;
  int64_t created = 0;
  std::string model;
};

std::string finish_reason_name(bool length);

nlohmann::ordered_json chat_completion(const CompletionInfo& info, const std::string& text, const std::string& finish_reason,
                               int64_t prompt_tokens, int64_t completion_tokens);
nlohmann::ordered_json text_completion(const CompletionInfo& info, const std::string& text, const std::string& finish_reason,
                               int64_t prompt_tokens, int64_t completion_tokens);
/// A stream chunk: `delta` text (chat: the role on the first chunk), the finish reason
/// on the last one.
nlohmann::ordered_json chat_chunk(const CompletionInfo& info, const std::optional<std::string>& text, bool first,
                          const std::optional<std::string>& finish_reason);
nlohmann::ordered_json text_chunk(const CompletionInfo& info, const std::string& text,
                          const std::optional<std::string>& finish_reason);
/// The usage-only chunk OpenAI sends last with stream_options.include_usage.
nlohmann::ordered_json usage_chunk(const CompletionInfo& info, bool chat, int64_t prompt_tokens, int64_t completion_tokens);

/// JSON text that never throws on invalid UTF-8 (replaced by U+FFFD).
std::string dump(const nlohmann::json& value);
/// The same for the responses, whose fields keep OpenAI's order.
std::string dump(const nlohmann::ordered_json& value);

}  // namespace troupe::apps::serve
