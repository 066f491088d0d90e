#pragma once
/// Text <-> token ids. Implementations: byte-level BPE (`tokenizer.json` or GPT-2
/// style `vocab.json` + `merges.txt`) and SentencePiece (`tokenizer.model`).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::models {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Token ids of `text`; with `add_special_tokens` the model's template (e.g. OPT's
  /// leading `</s>`, Llama's `<s>`) is applied as Hugging Face does by default.
  /// Invalid UTF-8 never crashes: its bytes are encoded as bytes.
  virtual std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = false) const = 0;
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int64_t id) const = 0;

  /// Special token ids from the tokenizer files (`tokenizer_config.json`,
  /// `special_tokens_map.json`), when defined.
  virtual std::optional<int64_t> bos_token_id() const = 0;
  virtual std::optional<int64_t> eos_token_id() const = 0;
  virtual std::optional<int64_t> pad_token_id() const = 0;

  /// Writes the tokenizer files into `dir` so both troupe and Hugging Face load them.
  virtual void save(const std::filesystem::path& dir) const = 0;
};

/// Loads the tokenizer of a model directory: `tokenizer.json`, else `vocab.json` +
/// `merges.txt`, else `tokenizer.model` (SentencePiece). Throws troupe::Error naming
/// the directory when none is there or a file is malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir);

}  // namespace troupe::models
