/// Greedy generation throughput of one model directory: prints one JSON line per batch
/// size. Driven by bench/generate_vs_transformers.py, which runs transformers on the
/// same weights and inputs in the same run.
#include <algorithm>
#include <chrono>
#include <iostream>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <troupe/models/generation.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::cerr << "usage: troupe_bench_generate MODEL_DIR INPUTS.safetensors THREADS [fp32|bf16]\n"
                 "  INPUTS holds input_ids (B, T0), attention_mask (B, T0) and max_new_tokens (1);\n"
                 "  the last argument is the inference dtype (default fp32)\n";
    return 2;
  }
  try {
    at::set_num_threads(std::stoi(argv[3]));
    auto model = troupe::models::load_pretrained(argv[1]);
    auto inputs = troupe::models::read_safetensors(argv[2]);
    auto ids = inputs.at("input_ids"), mask = inputs.at("attention_mask");
    troupe::models::GenerationOptions options;
    options.max_new_tokens = inputs.at("max_new_tokens").item<int64_t>();
    options.eos_token_ids = {-1};  // never stop early: every run makes the same number of tokens
    options.inference_dtype = troupe::models::inference_dtype_from_name(argc == 5 ? argv[4] : "fp32", "dtype");
    auto warm_up = options;
    warm_up.max_new_tokens = 2;
    troupe::models::generate(*model, ids.narrow(1, 0, 8), mask.narrow(1, 0, 8), warm_up);
    auto timed = [&](const troupe::models::GenerationOptions& o) {
      auto start = std::chrono::steady_clock::now();
      auto result = troupe::models::generate(*model, ids, mask, o);
      return std::make_pair(result, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
    auto prefill_options = options;
    prefill_options.max_new_tokens = 1;
    double prefill_seconds = timed(prefill_options).second;
    auto [out, seconds] = timed(options);
    prefill_seconds = std::min(prefill_seconds, timed(prefill_options).second);
    const auto new_tokens = ids.size(0) * (out.sequences.size(1) - ids.size(1));
    std::vector<int64_t> first_row(out.sequences[0].data_ptr<int64_t>(),
                                   out.sequences[0].data_ptr<int64_t>() + out.sequences.size(1));
    std::cout << nlohmann::json{{"batch", ids.size(0)},
                                {"seconds", seconds},
                                {"prefill_seconds", prefill_seconds},
                                {"new_tokens", new_tokens},
                                {"tokens_per_s", new_tokens / seconds},
                                // The decode rate alone: N - 1 steps after the first token.
                                {"decode_tokens_per_s", ids.size(0) * (out.sequences.size(1) - ids.size(1) - 1) /
                                                            std::max(seconds - prefill_seconds, 1e-9)},
                                {"first_row", first_row}}
                     .dump()
              << "\n";
  } catch (const std::exception& e) {
    std::cerr << "troupe_bench_generate: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
