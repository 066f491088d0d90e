#include "tokenizer/byte_level.hpp"

#include <algorithm>
#include <array>

#include "tokenizer/utf8.hpp"

namespace troupe::models::tokenizer {
namespace {

/// The printable bytes keep their own code point; the others are shifted to 256+,
/// exactly as GPT-2's `bytes_to_unicode()`.
struct ByteLevelTables {
  std::array<int32_t, 256> code_point{};
  std::array<std::string, 256> symbol;
  std::array<int16_t, 512> byte_of{};  // code point < 512 -> byte, or -1

  ByteLevelTables() {
    byte_of.fill(-1);
    int32_t shifted = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      code_point[b] = printable ? b : shifted++;
      append_utf8(symbol[b], code_point[b]);
      byte_of[code_point[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelTables& tables() {
  static const ByteLevelTables instance;
  return instance;
}

}  // namespace

const std::string& byte_level_symbol(uint8_t byte) { return tables().symbol[byte]; }

std::string to_byte_level(std::string_view bytes) {
  const auto& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.symbol[static_cast<uint8_t>(c)];
  return out;
}

bool append_from_byte_level(std::string_view token, std::string& out) {
  const auto& t = tables();
  const size_t start = out.size();
  for (size_t pos = 0; pos < token.size();) {
    auto cp = next_code_point(token, pos);
    if (cp.value < 0 || cp.value >= 512 || t.byte_of[cp.value] < 0) {
      out.resize(start);
      return false;
    }
    out += static_cast<char>(t.byte_of[cp.value]);
    pos += static_cast<size_t>(cp.length);
  }
  return true;
}

std::vector<std::string> byte_level_alphabet() {
  const auto& t = tables();
  std::vector<int> bytes(256);
  for (int b = 0; b < 256; ++b) bytes[b] = b;
  std::sort(bytes.begin(), bytes.end(), [&](int a, int b) { return t.code_point[a] < t.code_point[b]; });
  std::vector<std::string> out;
  out.reserve(256);
  for (int b : bytes) out.push_back(t.symbol[b]);
  return out;
}

}  // namespace troupe::models::tokenizer
