#pragma once
/// GPT-2's byte-level alphabet: every byte maps to one printable code point, so any
/// byte string (valid UTF-8 or not) becomes a string of vocabulary symbols.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::models::tokenizer {

/// UTF-8 of the symbol that stands for `byte` (e.g. 0x20 -> "Ġ").
const std::string& byte_level_symbol(uint8_t byte);

/// Maps every byte of `bytes` to its symbol.
std::string to_byte_level(std::string_view bytes);

/// Appends the bytes `token` stands for when every code point of it is a byte-level
/// symbol; otherwise appends nothing and returns false (added tokens such as
/// "New York" are not byte-level strings and decode as their own UTF-8).
bool append_from_byte_level(std::string_view token, std::string& out);

/// The 256 symbols ordered by code point, as Hugging Face's trainer orders its alphabet.
std::vector<std::string> byte_level_alphabet();

}  // namespace troupe::models::tokenizer
