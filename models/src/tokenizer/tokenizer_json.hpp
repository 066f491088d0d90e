#pragma once
/// Reads the content of a Hugging Face `tokenizer.json` into a BpePipeline.
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe_pipeline.hpp"

namespace troupe::models::tokenizer {

/// The GPT-2 split pattern, as `tokenizers` writes it for a `Split` pre-tokenizer.
inline constexpr const char* gpt2_split_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

/// Llama 3's split pattern (also OpenAI's cl100k), as its tokenizer.json writes it.
inline constexpr const char* llama3_split_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

/// Throws troupe::Error naming `file` and the field for malformed content, and
/// UnsupportedTokenizer for a type troupe does not implement (e.g. a WordPiece model).
BpePipeline parse_tokenizer_json(const nlohmann::json& spec, const std::string& file);

}  // namespace troupe::models::tokenizer

namespace troupe::models::tokenizer {

/// A TemplateProcessing post-processor "[bos] $A [eos]" (either may be absent) in
/// tokenizer.json form; ByteLevel when both are absent.
nlohmann::json make_post_processor(const std::optional<std::pair<std::string, int64_t>>& bos,
                                   const std::optional<std::pair<std::string, int64_t>>& eos);

/// The ByteLevel pre-tokenizer (and decoder) in tokenizer.json form.
nlohmann::json make_byte_level(bool add_prefix_space);

}  // namespace troupe::models::tokenizer
