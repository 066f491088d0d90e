#pragma once
/// Text in, text out: a model and its tokenizer behind one call, for the CLI, chat and
/// evaluation. Tokenises and left-pads a batch of prompts, generates, and decodes.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <troupe/models/causal_lm.hpp>
#include <troupe/models/generation.hpp>
#include <troupe/models/tokenizer.hpp>

namespace troupe::models {

struct Completion {
  std::vector<int64_t> prompt_ids;
  std::vector<int64_t> completion_ids;  ///< generated tokens up to and including EOS
  std::string text;                     ///< decoded completion, special tokens skipped
};

class TextGenerator {
 public:
  /// Fills unset EOS and pad ids of `options` from the tokenizer, else the config.
  TextGenerator(CausalLM model, std::shared_ptr<const Tokenizer> tokenizer, GenerationOptions options);

  /// One completion per prompt. Prompts are encoded with the model's special-token
  /// template; a prompt that encodes to no tokens is an error naming it.
  std::vector<Completion> complete(const std::vector<std::string>& prompts) const;
  /// As `complete`, from token ids.
  std::vector<Completion> complete_ids(const std::vector<std::vector<int64_t>>& prompt_ids) const;

  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const CausalLMImpl& model() const { return *model_; }
  GenerationOptions& options() { return options_; }
  const GenerationOptions& options() const { return options_; }

 private:
  CausalLM model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  GenerationOptions options_;
};

/// Left-pads token lists into (B, T) ids and a (B, T) mask of 1 for real tokens.
std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int64_t>>& rows, int64_t pad_id);

}  // namespace troupe::models
