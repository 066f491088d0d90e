// libFuzzer target: a `tokenizer.json`. Any bytes either load into a tokenizer that then
// encodes and decodes text without crashing, or are refused with troupe::Error naming
// the file and the field. The text is fixed (and the input itself), so every mutation
// goes into the JSON; fuzz_tokenizer_text varies the text against fixed tokenizers.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>

#include "tokenizer/bpe_tokenizer_impl.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto spec = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded()) return 0;  // read_json_file refuses it, naming the file
  std::unique_ptr<troupe::models::BpeTokenizer> tokenizer;
  try {
    tokenizer = troupe::models::tokenizer::make_bpe_tokenizer(std::move(spec), "fuzz/tokenizer.json", {}, {});
  } catch (const troupe::Error&) {
    return 0;
  }
  for (std::string_view text : {std::string_view("Hello world! 123  <|endoftext|> \xe2\x82\xac\xff"), input}) {
    for (bool special : {false, true}) {
      const auto ids = tokenizer->encode(text, special);
      (void)tokenizer->decode(ids, special);
      for (auto id : ids) (void)tokenizer->id_to_token(id);
    }
  }
  (void)tokenizer->decode({-1, 0, 1, tokenizer->vocab_size(), INT64_MAX}, false);
  return 0;
}
