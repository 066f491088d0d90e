#include "serve_prompt.hpp"

#include <algorithm>

namespace troupe::apps::serve {

PreparedPrompt prepare_prompt(const ApiRequest& request, const models::Tokenizer& tokenizer,
                              models::ChatFormat format, int64_t context) {
  const bool chat = request.endpoint == Endpoint::ChatCompletions;
  const std::string prompt_field = chat ? "messages" : "prompt";
  PreparedPrompt out;
  auto& ids = out.ids;
  if (chat) {
    ids = tokenizer.encode(models::render_chat(format, request.messages), /*add_special_tokens=*/true);
  } else if (!request.prompt_ids.empty()) {
    ids = request.prompt_ids;
    for (auto id : ids)
      if (id >= tokenizer.vocab_size())
        throw ApiError(400, "prompt: token id " + std::to_string(id) + " is outside the vocabulary of " +
                                std::to_string(tokenizer.vocab_size()), "invalid_request_error", "prompt");
  } else {
    ids = tokenizer.encode(request.prompt, /*add_special_tokens=*/true);
  }
  if (ids.empty()) throw ApiError(400, prompt_field + " encodes to no tokens", "invalid_request_error", prompt_field);
  const auto prompt_tokens = static_cast<int64_t>(ids.size());
  if (prompt_tokens >= context)
    throw ApiError(400,
                   "the prompt is " + std::to_string(prompt_tokens) + " tokens; the model's context is " +
                       std::to_string(context) + " tokens, which must hold the prompt and at least one new token",
                   "invalid_request_error", prompt_field, "context_length_exceeded");
  const int64_t room = context - prompt_tokens;
  out.max_new_tokens = request.max_tokens.value_or(chat ? room : std::min<int64_t>(16, room));
  if (out.max_new_tokens > room)
    throw ApiError(400,
                   "the prompt is " + std::to_string(prompt_tokens) + " tokens and max_tokens is " +
                       std::to_string(out.max_new_tokens) + ": together more than the model's context of " +
                       std::to_string(context) + " tokens",
                   "invalid_request_error", "max_tokens", "context_length_exceeded");
  out.stop = request.stop;
  if (chat) out.stop.push_back(models::chat_turn_marker(format));
  return out;
}

}  // namespace troupe::apps::serve
