#pragma once
/// `--max_new_tokens`, `--do_sample`, `--temperature`, `--top_k`, `--top_p`, `--seed`,
/// `--inference_dtype`:
/// shared by every command that generates text.
#include <string>

#include <CLI/CLI.hpp>

#include <troupe/models/generation.hpp>
#include <troupe/models/inference_layout.hpp>

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
  cmd.add_option_function<std::string>(
         "--inference_dtype",
         [&g](const std::string& v) { g.inference_dtype = models::inference_dtype_from_name(v, "--inference_dtype"); },
         "Dtype of the packed weights generation reads: fp32 or bf16 (default: the model's, fp32 unless --dtype bf16)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
}

}  // namespace troupe::apps
