#pragma once
/// Trains a byte-level BPE tokenizer the way Hugging Face's BpeTrainer does with a
/// ByteLevel pre-tokenizer; the result saves as a tokenizer.json that `tokenizers`
/// loads and encodes exactly as troupe does.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <troupe/models/bpe_tokenizer.hpp>

namespace troupe::models {

struct BpeTrainerOptions {
  /// Final vocabulary size: special tokens + the 256 byte symbols + merges.
  int64_t vocab_size = 32000;
  /// A pair seen fewer times than this is never merged.
  int64_t min_frequency = 2;
  /// Get ids 0.. in this order and are never split or merged.
  std::vector<std::string> special_tokens;
  bool add_prefix_space = false;
  /// Names among `special_tokens`, written to tokenizer_config.json.
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  /// With add_special_tokens, encode() frames the text as "[bos] text [eos]".
  bool add_bos_token = false;
  bool add_eos_token = false;
};

/// Learns merges from `texts` by pair frequency (ties: the pair of smaller ids first,
/// so training is deterministic). Throws troupe::Error for inconsistent options.
std::unique_ptr<BpeTokenizer> train_bpe_tokenizer(const std::vector<std::string>& texts,
                                                  const BpeTrainerOptions& options);

}  // namespace troupe::models
