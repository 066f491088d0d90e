#pragma once
/// The state behind BpeTokenizer: the tokenizer.json content (written back by save())
/// and the pipeline parsed from it.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/models/bpe_tokenizer.hpp>

#include "tokenizer/bpe_pipeline.hpp"

namespace troupe::models {

struct BpeTokenizer::Impl {
  nlohmann::json spec;
  tokenizer::BpePipeline pipeline;
  /// "bos_token" -> "</s>" and so on, as transformers names them.
  std::map<std::string, std::string> special_names;
  std::vector<std::string> additional_special_tokens;
  /// The tokenizer_config.json this was loaded with (null if none), kept by save().
  nlohmann::json config;
};

namespace tokenizer {

/// GPT-2's only special token; transformers' GPT-2 classes default bos/eos/unk to it.
inline constexpr const char* gpt2_end_of_text = "<|endoftext|>";

/// Parses `spec` (tokenizer.json content; `file` names it in errors) into a tokenizer.
std::unique_ptr<BpeTokenizer> make_bpe_tokenizer(nlohmann::json spec, const std::string& file,
                                                 std::map<std::string, std::string> special_names,
                                                 std::vector<std::string> additional_special_tokens,
                                                 nlohmann::json config = nullptr);

}  // namespace tokenizer
}  // namespace troupe::models
