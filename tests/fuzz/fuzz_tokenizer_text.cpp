// libFuzzer target: text through the repository's fixture tokenizers (byte-level BPE
// from tokenizer.json and from vocab.json + merges.txt, SentencePiece). Any bytes,
// valid UTF-8 or not, encode to ids inside the vocabulary and decode again; where
// troupe promises it (byte-level BPE with all 256 bytes in its vocabulary, without a
// normalizer, a prefix space or added tokens that strip spaces), decode(encode(text))
// gives the text back byte for byte.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <troupe/models/tokenizer.hpp>

namespace {

struct FixtureTokenizer {
  std::string dir;
  std::unique_ptr<troupe::models::Tokenizer> tokenizer;
  bool round_trips;
};

std::vector<FixtureTokenizer> load_fixtures() {
  const std::string dir = TROUPE_FIXTURES_DIR;
  std::vector<FixtureTokenizer> out;
  for (const auto& [name, round_trips] : std::vector<std::pair<std::string, bool>>{
           {"/models/opt", true},
           {"/models/opt_ascii", false},  // bytes outside its ASCII vocabulary become <unk>
           // "<mask>" strips the space before it (lstrip), as in Hugging Face.
           {"/tokenizer/bpe", false},
           {"/tokenizer/bpe_llama3", false},
           {"/tokenizer/bpe_sequence", false},
           {"/tokenizer/bpe_prefix", false},
           {"/tokenizer/bpe_vocab_merges", false},
           {"/tokenizer/spm", false}}) {
    out.push_back({name, troupe::models::load_tokenizer(dir + name), round_trips});
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto fixtures = load_fixtures();
  if (size == 0) return 0;
  // The first byte picks the flags, the rest is the text.
  const bool add_special = data[0] & 1, skip_special = data[0] & 2;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (const auto& [name, tokenizer, round_trips] : fixtures) {
    const auto ids = tokenizer->encode(text, add_special);
    for (auto id : ids) {
      if (id < 0 || id >= tokenizer->vocab_size()) {
        std::fprintf(stderr, "%s: id %lld outside the vocabulary of %lld\n", name.c_str(), static_cast<long long>(id),
                     static_cast<long long>(tokenizer->vocab_size()));
        std::abort();
      }
    }
    const auto decoded = tokenizer->decode(ids, skip_special);
    if (round_trips && !add_special && !skip_special && decoded != text) {
      std::fprintf(stderr, "%s: decode(encode(text)) differs: %zu bytes in, %zu out\n", name.c_str(), text.size(),
                   decoded.size());
      std::abort();
    }
  }
  return 0;
}
