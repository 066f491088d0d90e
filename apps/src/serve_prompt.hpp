#pragma once
/// A checked API request turned into what the model runs: prompt ids (the chat format
/// rendered and tokenized, or the client's ids) that fit the context together with
/// max_tokens, and the strings that stop it. No model and no HTTP here.
#include <cstdint>
#include <string>
#include <vector>

#include <troupe/models/chat_format.hpp>
#include <troupe/models/tokenizer.hpp>

#include "serve_api.hpp"

namespace troupe::apps::serve {

struct PreparedPrompt {
  std::vector<int64_t> ids;
  int64_t max_new_tokens = 0;
  std::vector<std::string> stop;  ///< the client's stop strings, and the chat turn marker for chat
};

/// Throws ApiError (400) naming the field for a prompt that encodes to nothing, a token
/// id outside the vocabulary, or a prompt that leaves no room in `context` positions for
/// max_tokens (code context_length_exceeded).
PreparedPrompt prepare_prompt(const ApiRequest& request, const models::Tokenizer& tokenizer,
                              models::ChatFormat format, int64_t context);

}  // namespace troupe::apps::serve
