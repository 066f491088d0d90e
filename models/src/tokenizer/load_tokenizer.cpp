#include <troupe/models/bpe_tokenizer.hpp>
#include "sentencepiece_tokenizer.hpp"
#include <troupe/models/tokenizer.hpp>

#include "tokenizer/errors.hpp"

namespace troupe::models {

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir) {
  const auto json_file = dir / "tokenizer.json";
  const auto model_file = dir / "tokenizer.model";
  if (std::filesystem::exists(json_file)) {
    try {
      return BpeTokenizer::from_tokenizer_json(json_file);
    } catch (const tokenizer::UnsupportedTokenizer&) {
      // Llama 1/2 ship a SentencePiece-style tokenizer.json beside their tokenizer.model.
      if (!std::filesystem::exists(model_file)) throw;
      return SentencePieceTokenizer::from_file(model_file);
    }
  }
  if (std::filesystem::exists(dir / "vocab.json") && std::filesystem::exists(dir / "merges.txt")) {
    return BpeTokenizer::from_vocab_merges(dir);
  }
  if (std::filesystem::exists(model_file)) return SentencePieceTokenizer::from_file(model_file);
  throw Error(dir.string() + ": no tokenizer found (looked for tokenizer.json, vocab.json + merges.txt, tokenizer.model)");
}

}  // namespace troupe::models
