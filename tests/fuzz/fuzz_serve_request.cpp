// libFuzzer target: the body of a `troupe serve` request (/v1/chat/completions or
// /v1/completions) through what the HTTP handler does before the model runs: parse and
// check it, render and tokenize the prompt, fit it to the context. Any body either
// becomes a prompt that fits or is refused with an OpenAI error object (ApiError).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include <troupe/common/error.hpp>
#include <troupe/models/tokenizer.hpp>

#include "serve_api.hpp"
#include "serve_prompt.hpp"

namespace serve = troupe::apps::serve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizer = troupe::models::load_tokenizer(std::string(TROUPE_FIXTURES_DIR) + "/models/opt");
  constexpr int64_t kContext = 64;
  if (size == 0) return 0;
  // The first byte picks the endpoint and the chat format, the rest is the body.
  const auto endpoint = data[0] & 1 ? serve::Endpoint::Completions : serve::Endpoint::ChatCompletions;
  const auto format = data[0] & 2 ? troupe::models::ChatFormat::DeepSpeedChat : troupe::models::ChatFormat::Troupe;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const auto request = serve::parse_request(endpoint, body, kContext - 1);
    const auto prompt = serve::prepare_prompt(request, *tokenizer, format, kContext);
    const auto length = static_cast<int64_t>(prompt.ids.size());
    if (length < 1 || prompt.max_new_tokens < 1 || length + prompt.max_new_tokens > kContext) std::abort();
  } catch (const serve::ApiError& e) {
    if (e.status != 400) std::abort();
    (void)serve::dump(e.body());  // what the client gets back
  }
  return 0;
}
