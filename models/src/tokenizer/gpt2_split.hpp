#pragma once
/// GPT-2's pre-tokenizer split, written by hand over ICU character categories:
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// It is the split Hugging Face's ByteLevel pre-tokenizer uses (use_regex: true).
#include <string_view>
#include <vector>

namespace troupe::models::tokenizer {

/// Appends the pieces of `text` to `pieces`; they cover `text` exactly. Bytes that are
/// not valid UTF-8 count as punctuation-like characters of their own.
void split_gpt2(std::string_view text, std::vector<std::string_view>& pieces);

}  // namespace troupe::models::tokenizer
