#pragma once
/// SentencePiece models (`tokenizer.model`, Llama 1/2 style) through libsentencepiece.
#include <filesystem>
#include <memory>

#include <troupe/models/tokenizer.hpp>

namespace troupe::models {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  /// Loads `model_file`; bos/eos/pad names and `add_bos_token` / `add_eos_token`
  /// (defaults: true, false, as Llama's) come from `tokenizer_config.json` and
  /// `special_tokens_map.json` beside it, else from the model's own ids.
  static std::unique_ptr<SentencePieceTokenizer> from_file(const std::filesystem::path& model_file);
  ~SentencePieceTokenizer() override;

  /// Plain SentencePiece encoding: special-token strings in the text stay text, as in
  /// the `sentencepiece` library; `add_special_tokens` adds bos/eos by the flags above.
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = false) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const override;
  int64_t vocab_size() const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  std::optional<int64_t> bos_token_id() const override;
  std::optional<int64_t> eos_token_id() const override;
  std::optional<int64_t> pad_token_id() const override;
  /// Writes tokenizer.model, tokenizer_config.json and special_tokens_map.json.
  void save(const std::filesystem::path& dir) const override;

 private:
  struct Impl;
  explicit SentencePieceTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe::models
