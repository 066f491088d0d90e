#pragma once
/// Turning a phase's samples into token ids, as DeepSpeed-Chat's create_dataset_split
/// does: step 1 prompt+chosen+EOS, step 2 prompt+chosen+EOS and prompt+rejected+EOS
/// (both cut at max_seq_len), step 3 the prompt alone, dropped when longer than
/// max_prompt_seq_len. Texts are encoded with the tokenizer's special-token template
/// (e.g. OPT's leading </s>), as Hugging Face tokenizers do by default.
#include <cstdint>
#include <string>
#include <vector>

#include <troupe/data/sample.hpp>

namespace troupe::models {
class Tokenizer;
}

namespace troupe::data {

struct LengthOptions {
  int64_t max_seq_len = 512;         ///< steps 1 and 2: sequences are cut here
  int64_t max_prompt_seq_len = 256;  ///< step 3: longer prompts are dropped
};

/// The per-sample token arrays a cache can hold.
enum class Field : int { prompt = 0, chosen = 1, rejected = 2 };
inline constexpr int kFieldCount = 3;
const char* field_name(Field f);

/// The fields a phase stores: 1 chosen; 2 chosen and rejected; 3 prompt.
std::vector<Field> phase_fields(int phase);

/// Counts of what tokenization kept, cut and dropped, and why.
struct PhaseStats {
  int64_t samples = 0;        ///< samples given
  int64_t kept = 0;           ///< samples stored
  int64_t no_prompt = 0;      ///< dropped: step 3 needs a prompt
  int64_t no_chosen = 0;      ///< dropped: steps 1 and 2 need chosen
  int64_t no_rejected = 0;    ///< dropped: step 2 needs rejected
  int64_t prompt_too_long = 0;  ///< dropped: step 3 prompt over max_prompt_seq_len
  int64_t truncated = 0;      ///< kept but cut at max_seq_len (steps 1, 2)
};

struct TokenizedPhase {
  int phase = 1;
  std::vector<std::vector<int32_t>> fields[kFieldCount];  ///< by Field; empty when not stored
  std::vector<int64_t> full_lengths;  ///< uncut token counts of every stored sequence and dropped prompt
  PhaseStats stats;
};

/// Tokenizes `samples` for `phase` (1, 2 or 3). Throws troupe::Error when steps 1-2
/// need an EOS token the tokenizer does not define.
TokenizedPhase tokenize_phase(const std::vector<Sample>& samples, int phase, const models::Tokenizer& tokenizer,
                              const LengthOptions& lengths);

/// The text a phase trains on for one sample: prompt + response (either may be absent).
std::string joined_text(const std::optional<std::string>& prompt, const std::optional<std::string>& response);

}  // namespace troupe::data
