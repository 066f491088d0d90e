/// Cost of the Hybrid Engine's switches on an OPT-125m-shaped random model with LoRA:
/// entering the inference layout (weights packed, adapters folded in), generating and
/// leaving, per mode (fp32 or bf16 packed weights, kept or released), printed as a
/// table and optionally written as JSON.
///
///   troupe_bench_hybrid_switch [--batch 4] [--prompt 32] [--new 32] [--reps 3]
///                              [--threads 2] [--device cpu|cuda] [--bf16] [--json FILE]
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/models/lora.hpp>

#include "bench_support.hpp"

namespace {

using namespace troupe;

struct Args {
  int64_t batch = 4, prompt = 32, new_tokens = 32, reps = 3, threads = 2;
  std::string device = "cpu", json;
  bool bf16 = false;
};

Args parse(int argc, char** argv) {
  Args a;
  bench::for_each_flag(argc, argv, [&](const std::string& flag, const bench::FlagValue& value) {
    if (flag == "--batch") a.batch = std::stoll(value());
    else if (flag == "--prompt") a.prompt = std::stoll(value());
    else if (flag == "--new") a.new_tokens = std::stoll(value());
    else if (flag == "--reps") a.reps = std::stoll(value());
    else if (flag == "--threads") a.threads = std::stoll(value());
    else if (flag == "--device") a.device = value();
    else if (flag == "--json") a.json = value();
    else if (flag == "--bf16") a.bf16 = true;
    else throw Error("unknown flag " + flag);
  });

  return a;
}

/// facebook/opt-125m's shape with random weights (no download needed).
models::Config opt_125m() {
  return models::parse_config({{"model_type", "opt"},
                               {"vocab_size", 50272},
                               {"hidden_size", 768},
                               {"num_hidden_layers", 12},
                               {"num_attention_heads", 12},
                               {"ffn_dim", 3072},
                               {"max_position_embeddings", 2048},
                               {"word_embed_proj_dim", 768},
                               {"do_layer_norm_before", true},
                               {"dropout", 0.0},
                               {"pad_token_id", 1},
                               {"eos_token_id", 2}},
                              "opt-125m shape");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto args = parse(argc, argv);
    at::set_num_threads(static_cast<int>(args.threads));
    const torch::Device device(args.device);
    torch::manual_seed(0);
    auto model = models::make_causal_lm(opt_125m());
    models::apply_lora(*model, {8, 8.0, 0.0, "decoder.layers."});
    models::only_optimize_lora(*model);
    // Built at the start of step 3, while the adapters are still zero: it shares the base.
    engine::ReferencePolicy reference(model);
    {
      torch::NoGradGuard no_grad;  // trained-looking adapters: fusing changes the weights
      for (auto& [name, linear] : model->linear_layers())
        if (linear->has_lora()) linear->lora_B.normal_(0, 0.02);
    }
    model->to(device, args.bf16 ? torch::kBFloat16 : torch::kFloat32);
    auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(device);
    auto ids = torch::randint(3, 50272, {args.batch, args.prompt}, long_opts);  // (B, T0)
    auto mask = torch::ones({args.batch, args.prompt}, long_opts);               // (B, T0)
    models::GenerationOptions generation;
    generation.max_new_tokens = args.new_tokens;
    generation.eos_token_ids = {-1};  // never stop early: every run makes the same tokens

    struct Mode {
      std::string name;
      engine::HybridEngineOptions options;
    };
    std::vector<Mode> modes(4);
    modes[0].name = "fp32 packed, kept";
    modes[1].name = "fp32 packed, released";
    modes[1].options.release_inference_cache = true;
    modes[2].name = "bf16 packed, kept";
    modes[2].options.inference_dtype = torch::kBFloat16;
    modes[3].name = "bf16 packed, released";
    modes[3].options.inference_dtype = torch::kBFloat16;
    modes[3].options.release_inference_cache = true;

    std::printf("OPT-125m shape + LoRA r=8 on decoder.layers., %s %s, B=%lld, %lld+%lld tokens, %lld threads, "
                "median of %lld\n",
                args.device.c_str(), args.bf16 ? "bf16" : "fp32", static_cast<long long>(args.batch),
                static_cast<long long>(args.prompt), static_cast<long long>(args.new_tokens),
                static_cast<long long>(args.threads), static_cast<long long>(args.reps));
    std::printf("%-24s %10s %12s %10s %10s\n", "mode", "enter s", "generate s", "leave s", "tok/s");
    nlohmann::json rows = nlohmann::json::array();
    for (auto& mode : modes) {
      mode.options.log_switches = false;
      engine::HybridEngine hybrid(model, mode.options);
      hybrid.generate(ids, mask, generation);  // warm-up (allocations, first-call costs)
      std::vector<double> fuse, gen, unfuse, tps;
      for (int64_t r = 0; r < args.reps; ++r) {
        hybrid.generate(ids, mask, generation);
        const auto& t = hybrid.last_timings();
        fuse.push_back(t.enter_seconds);
        gen.push_back(t.generate_seconds);
        unfuse.push_back(t.leave_seconds);
        tps.push_back(t.tokens_per_second());
      }
      std::printf("%-24s %10.4f %12.4f %10.4f %10.1f\n", mode.name.c_str(), median(fuse), median(gen), median(unfuse),
                  median(tps));
      rows.push_back({{"mode", mode.name},
                      {"enter_seconds", median(fuse)},
                      {"generate_seconds", median(gen)},
                      {"leave_seconds", median(unfuse)},
                      {"tokens_per_s", median(tps)}});
    }
    const auto dtype = args.bf16 ? torch::kBFloat16 : torch::kFloat32;
    const auto kv = engine::kv_cache_bytes(model->config(), args.batch, args.prompt + args.new_tokens, dtype);
    std::printf("parameters %s, KV cache %s, %s\n", engine::format_bytes(engine::parameter_bytes(*model)).c_str(),
                engine::format_bytes(kv).c_str(), reference.memory_summary().c_str());
    if (auto stats = engine::device_memory_stats(device)) {
      std::printf("device peak allocated %s\n", engine::format_bytes(stats->peak_allocated_bytes).c_str());
    }
    if (!args.json.empty()) {
      std::ofstream out(args.json);
      out << nlohmann::json{{"batch", args.batch},   {"prompt", args.prompt},
                            {"new_tokens", args.new_tokens}, {"device", args.device},
                            {"bf16", args.bf16},     {"kv_cache_bytes", kv},
                            {"reference_saved_bytes", reference.saved_parameter_bytes()},
                            {"rows", rows}}
                 .dump(2)
          << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "troupe_bench_hybrid_switch: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
