#pragma once
/// `--max_new_tokens`, `--do_sample`, `--temperature`, `--top_k`, `--top_p`, `--seed`:
/// shared by every command that generates text.
#include <string>

#include <CLI/CLI.hpp>

#include <troupe/models/generation.hpp>

namespace troupe::apps {

inline void add_generation_flags(CLI::App& cmd, models::GenerationOptions& g) {
  auto positive = CLI::Validator(
      [](std::string& v) { return std::stod(v) > 0 ? std::string() : "expected a positive number, got " + v; }, "POSITIVE");
  cmd.add_option("--max_new_tokens", g.max_new_tokens, "Tokens to generate at most")->capture_default_str()->check(CLI::Range(0, 1 << 20));
  cmd.add_option("--do_sample", g.do_sample, "Sample (true) or greedy (false)")->capture_default_str();
  cmd.add_option("--temperature", g.temperature, "Sampling temperature")->capture_default_str()->check(positive);
  cmd.add_option("--top_k", g.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--top_p", g.top_p, "Keep the most likely tokens up to this probability mass")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd.add_option("--seed", g.seed, "Random seed for sampling")->capture_default_str();
}

}  // namespace troupe::apps
