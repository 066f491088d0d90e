#pragma once
/// The split patterns of byte-level pre-tokenizers, written by hand over ICU character
/// categories instead of a regex engine. GPT-2's (ByteLevel with use_regex: true):
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// Llama 3's (a Split pre-tokenizer before ByteLevel):
///   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
///   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
#include <string_view>
#include <vector>

namespace troupe::models::tokenizer {

/// Appends the pieces of `text` to `pieces`; they cover `text` exactly. Bytes that are
/// not valid UTF-8 count as punctuation-like characters of their own.
void split_gpt2(std::string_view text, std::vector<std::string_view>& pieces);
void split_llama3(std::string_view text, std::vector<std::string_view>& pieces);

}  // namespace troupe::models::tokenizer
