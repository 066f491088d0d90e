/// Encode and decode throughput of troupe's tokenizers on generated text with a
/// Zipf-like word distribution (so the word cache sees realistic hit rates).
///   bench_tokenizer [TOKENIZER_DIR...] [--mb N]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <troupe/models/tokenizer.hpp>

namespace {

std::string make_text(size_t bytes) {
  const std::vector<std::string> syllables{"the", "re", "ward", "mo", "del", "ac", "tor", "cri", "tic", "po",
                                           "li", "cy", "ka", "to", "na", "é", "東", "京", "ing", "s"};
  const std::vector<std::string> separators{" ", " ", " ", " ", ", ", ". ", "\n", "  ", "'s ", " 42 ", " 🤗 "};
  std::mt19937 rng(1234);
  // 60000 distinct words, drawn with probability ~ 1 / rank.
  std::vector<std::string> words;
  for (int i = 0; i < 60000; ++i) {
    std::string word;
    const int length = 1 + static_cast<int>(rng() % 4);
    for (int s = 0; s < length; ++s) word += syllables[rng() % syllables.size()];
    words.push_back(word);
  }
  std::vector<double> weights(words.size());
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = 1.0 / static_cast<double>(i + 1);
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  std::string text;
  while (text.size() < bytes) {
    text += words[pick(rng)];
    text += separators[rng() % separators.size()];
  }
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> dirs;
  double megabytes = 4;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mb") == 0 && i + 1 < argc) {
      megabytes = std::stod(argv[++i]);
    } else {
      dirs.emplace_back(argv[i]);
    }
  }
  if (dirs.empty()) {
    for (const char* name : {"bpe", "bpe_vocab_merges", "spm"}) dirs.push_back(std::string(TROUPE_FIXTURES_DIR) + "/tokenizer/" + name);
  }
  const std::string text = make_text(static_cast<size_t>(megabytes * 1e6));
  std::printf("%-60s %10s %12s %12s %12s\n", "tokenizer", "tokens", "cold MB/s", "warm MB/s", "decode MB/s");
  for (const auto& dir : dirs) {
    auto tokenizer = troupe::models::load_tokenizer(dir);
    const double mb = static_cast<double>(text.size()) / 1e6;
    auto start = std::chrono::steady_clock::now();
    const auto ids = tokenizer->encode(text);
    const double cold = seconds_since(start);
    start = std::chrono::steady_clock::now();
    tokenizer->encode(text);
    const double warm = seconds_since(start);
    start = std::chrono::steady_clock::now();
    const auto back = tokenizer->decode(ids);
    const double decode = seconds_since(start);
    std::printf("%-60s %10zu %12.1f %12.1f %12.1f%s\n", dir.c_str(), ids.size(), mb / cold, mb / warm, mb / decode,
                back == text ? "" : "  (decode differs from the text)");
  }
  return 0;
}
