/// One supervised fine-tuning step of an OPT-125m-shaped model through the TrainEngine
/// (forward, causal-LM loss, backward, clipping, AdamW): median seconds per step,
/// tokens/s, peak RSS and model FLOPs utilisation against a measured fp32 matmul peak.
/// Driven by bench/train_step_vs_transformers.py, which runs transformers on the same
/// weights and batch in the same run.
///
///   troupe_bench_train_step [--model DIR] [--inputs FILE] [--batch 1] [--seq 512]
///                           [--steps 3] [--threads 2] [--json FILE] [--op_profile ROWS]
///
/// --model: a Hugging Face directory (random OPT-125m-shaped weights when absent);
/// --inputs: a safetensors file with input_ids (B, T) (random ids of --batch x --seq
/// when absent). Labels are the ids; the mask is all ones. --op_profile: after the
/// table, the ROWS operators (with input shapes) that took the most self time in the
/// timed steps (bench/op_profile.py prints the same table for transformers).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/engine/host_memory.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>

#include "bench_support.hpp"
#include "op_profile.hpp"

namespace {

using namespace troupe;

struct Args {
  int64_t batch = 1, seq = 512, steps = 3, threads = 2, op_profile = 0;
  std::string model, inputs, json, dtype = "fp32";
  bool system_allocator = false;  ///< glibc's defaults, to measure what keep_freed_host_memory() gains
};

Args parse(int argc, char** argv) {
  Args a;
  bench::for_each_flag(argc, argv, [&](const std::string& flag, const bench::FlagValue& value) {
    if (flag == "--model") a.model = value();
    else if (flag == "--inputs") a.inputs = value();
    else if (flag == "--batch") a.batch = std::stoll(value());
    else if (flag == "--seq") a.seq = std::stoll(value());
    else if (flag == "--steps") a.steps = std::stoll(value());
    else if (flag == "--threads") a.threads = std::stoll(value());
    else if (flag == "--json") a.json = value();
    else if (flag == "--dtype") a.dtype = value();
    else if (flag == "--system_allocator") a.system_allocator = true;
    else if (flag == "--op_profile") a.op_profile = std::stoll(value());
    else throw Error("unknown flag " + flag);
  });

  if (a.steps < 1) throw Error("--steps must be >= 1");
  return a;
}

/// facebook/opt-125m's shape with random weights (no download needed), dropout off.
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

using bench::median;
using bench::peak_rss_bytes;
using bench::seconds_since;

/// Best-of-5 GFLOP/s of a 2048 x 2048 torch::mm in `dtype` at the current thread count:
/// the machine's practical matmul peak, the denominator of MFU.
double matmul_peak_gflops(torch::ScalarType dtype) {
  const int64_t n = 2048;
  auto a = torch::randn({n, n}).to(dtype);  // (n, n)
  auto b = torch::randn({n, n}).to(dtype);  // (n, n)
  auto c = torch::mm(a, b);       // warm-up
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    auto start = std::chrono::steady_clock::now();
    c = torch::mm(a, b);
    best = std::min(best, seconds_since(start));
  }
  return 2.0 * n * n * n / best / 1e9;
}

/// Distinct parameters (a tied LM head counted once, as PyTorch's parameters() does).
int64_t parameter_count(torch::nn::Module& model) {
  std::unordered_set<const void*> seen;
  int64_t count = 0;
  for (const auto& p : model.parameters())
    if (seen.insert(p.data_ptr()).second) count += p.numel();
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto args = parse(argc, argv);
    at::set_num_threads(static_cast<int>(args.threads));
    if (!args.system_allocator) engine::keep_freed_host_memory();  // as troupe train's steps 1 and 2
    const auto dtype = engine::parse_compute_dtype(args.dtype, "--dtype");
    const double peak_gflops = matmul_peak_gflops(dtype);

    torch::manual_seed(0);
    auto model = args.model.empty() ? models::make_causal_lm(opt_125m()) : models::load_pretrained(args.model);
    torch::Tensor ids;  // (B, T)
    if (args.inputs.empty()) ids = torch::randint(3, 50000, {args.batch, args.seq}, torch::kLong);
    else ids = models::read_safetensors(args.inputs).at("input_ids").to(torch::kLong).contiguous();
    const auto mask = torch::ones_like(ids);  // (B, T)
    const int64_t B = ids.size(0), T = ids.size(1);
    const auto& config = model->config();

    engine::TrainOptions o;
    o.optimizer.learning_rate = 1e-5;
    o.optimizer.weight_decay = 0.0;
    o.schedule = {engine::ScheduleType::Constant, 0, 1};
    o.max_grad_norm = 1.0;
    o.compute_dtype = dtype;  // bf16: autocast over fp32 masters, as DeepSpeed's bf16 mode
    engine::TrainEngine trainer(model, o);
    auto step = [&]() {
      auto start = std::chrono::steady_clock::now();
      auto result = trainer.micro_step([&](models::CausalLMImpl& m) {
        auto logits = m.forward(ids, mask);                   // (B, T, V)
        return engine::language_model_loss(logits, ids);
      });
      return std::make_pair(result, seconds_since(start));
    };

    const auto [first, warmup_seconds] = step();  // warm-up: allocations, optimizer state
    std::vector<double> seconds, losses{first.loss};
    std::optional<bench::OpProfile> profile;
    if (args.op_profile > 0) profile.emplace();
    for (int64_t s = 0; s < args.steps; ++s) {
      auto [result, t] = step();
      seconds.push_back(t);
      losses.push_back(result.loss);
    }
    const double step_seconds = median(seconds);
    const int64_t tokens = B * T;
    const int64_t n_params = parameter_count(*model);
    // Model FLOPs per step (PaLM's MFU accounting): 6 * N * tokens for the matmuls of the
    // forward (2N per token) and backward (4N per token), N = every distinct parameter
    // (the tied embedding stands for the LM head's matmul; position embeddings and norms
    // overcount by < 2%), plus 12 * L * C * T * tokens for attention scores and weighted
    // values (2 * 2 * T * C per token and layer forward, twice that backward; causal
    // masking not discounted).
    const double flops = 6.0 * static_cast<double>(n_params) * static_cast<double>(tokens) +
                         12.0 * static_cast<double>(config.num_layers * config.hidden_size * T) *
                             static_cast<double>(tokens);
    const double achieved_gflops = flops / step_seconds / 1e9;
    const int64_t rss = peak_rss_bytes();

    std::printf("SFT step (forward, LM loss, backward, clip 1.0, AdamW), %s, %s CPU, B=%lld T=%lld, %lld threads, "
                "median of %lld after 1 warm-up\n",
                args.model.empty() ? "OPT-125m shape (random)" : args.model.c_str(), args.dtype.c_str(), static_cast<long long>(B),
                static_cast<long long>(T), static_cast<long long>(args.threads), static_cast<long long>(args.steps));
    std::printf("%-28s %12s\n", "metric", "troupe");
    std::printf("%-28s %12.3f\n", "s/step", step_seconds);
    std::printf("%-28s %12.1f\n", "tokens/s", static_cast<double>(tokens) / step_seconds);
    std::printf("%-28s %12.1f\n", "model GFLOP/step", flops / 1e9);
    std::printf("%-28s %12.1f\n", "achieved GFLOP/s", achieved_gflops);
    std::printf("%-28s %12.1f\n", "matmul peak GFLOP/s", peak_gflops);
    std::printf("%-28s %11.1f%%\n", "MFU", 100.0 * achieved_gflops / peak_gflops);
    std::printf("%-28s %12.1f\n", "peak RSS MiB", static_cast<double>(rss) / (1 << 20));
    std::printf("%-28s %12.6f\n", "first-step loss", first.loss);
    std::printf("%-28s %12.6f\n", "first-step grad norm", first.grad_norm);
    std::printf("%-28s %12.6f\n", "last-step loss", losses.back());
    if (profile) {
      std::printf("\noperators by self time, per step (median step %.3f s):\n", step_seconds);
      profile->print(static_cast<int>(args.op_profile), static_cast<double>(args.steps));
    }
    if (!args.json.empty()) {
      std::ofstream out(args.json);
      out << nlohmann::json{{"batch", B},
                            {"seq", T},
                            {"threads", args.threads},
                            {"steps", args.steps},
                            {"n_params", n_params},
                            {"step_seconds", step_seconds},
                            {"step_seconds_all", seconds},
                            {"warmup_seconds", warmup_seconds},
                            {"tokens_per_s", static_cast<double>(tokens) / step_seconds},
                            {"model_flops_per_step", flops},
                            {"achieved_gflops", achieved_gflops},
                            {"matmul_peak_gflops", peak_gflops},
                            {"mfu", achieved_gflops / peak_gflops},
                            {"peak_rss_bytes", rss},
                            {"first_loss", first.loss},
                            {"first_grad_norm", first.grad_norm},
                            {"losses", losses}}
                 .dump(2)
          << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "troupe_bench_train_step: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
