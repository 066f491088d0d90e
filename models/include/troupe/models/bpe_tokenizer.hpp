#pragma once
/// Byte-level BPE as Hugging Face `tokenizers` runs it (GPT-2, OPT, RoBERTa, Llama 3
/// style files): ids identical to the reference library for the supported pipeline.
#include <filesystem>
#include <memory>

#include <troupe/models/tokenizer.hpp>

namespace troupe::models {

class BpeTokenizer final : public Tokenizer {
 public:
  /// The parsed files; built only by the loaders and the trainer.
  struct Impl;
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  ~BpeTokenizer() override;

  /// Loads a `tokenizer.json`; special-token names come from `tokenizer_config.json`
  /// and `special_tokens_map.json` beside it. Unsupported stages (a WordPiece model, a
  /// Metaspace pre-tokenizer) are a troupe::Error naming the file and the field.
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::filesystem::path& file);

  /// Loads GPT-2 style `vocab.json` + `merges.txt` of `dir`, with the special tokens and
  /// flags (`add_bos_token`, `add_prefix_space`) of its `tokenizer_config.json`,
  /// `special_tokens_map.json` and `added_tokens.json`.
  static std::unique_ptr<BpeTokenizer> from_vocab_merges(const std::filesystem::path& dir);

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = false) const override;
  /// Returns the raw bytes the tokens stand for (Hugging Face would replace invalid UTF-8
  /// with U+FFFD; troupe keeps the bytes so that decode(encode(x)) == x for any x).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const override;
  /// One past the largest id of the model and added tokens: the embedding rows needed.
  int64_t vocab_size() const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  /// The token string (byte-level symbols, e.g. "Ġworld"); empty for an unknown id.
  std::string id_to_token(int64_t id) const override;
  std::optional<int64_t> bos_token_id() const override;
  std::optional<int64_t> eos_token_id() const override;
  std::optional<int64_t> pad_token_id() const override;
  std::optional<int64_t> unk_token_id() const;

  /// Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json.
  void save(const std::filesystem::path& dir) const override;

 private:
  std::optional<int64_t> named_token_id(const char* key) const;

  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe::models
