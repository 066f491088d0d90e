/// Each kernel beside its LibTorch reference (the `reference::` of its header) over
/// decode- and training-sized shapes, as GB/s of the bytes the op must touch (weights,
/// KV cache, logits, optimizer state), plus a streaming-read probe that says what the
/// memory system allows in the same run.
///   troupe_bench_kernels [--device cpu|cuda] [--threads N] [--json FILE]
#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <troupe/kernels/decode_attention.hpp>
#include <troupe/kernels/decode_linear.hpp>
#include <troupe/kernels/fused_adamw.hpp>
#include <troupe/kernels/logprob_gather.hpp>
#include <troupe/kernels/sampling.hpp>

#include "bench_support.hpp"

namespace {

using troupe::bench::median;
using troupe::bench::seconds_since;

struct Options {
  std::string device = "cpu";
  int threads = 0;
  std::string json;
};

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

/// Median seconds of `fn` over enough repetitions for ~0.3 s (at least 5).
double time_of(const torch::Device& device, const std::function<void()>& fn) {
  fn();
  synchronize(device);
  std::vector<double> samples;
  auto begin = std::chrono::steady_clock::now();
  while (samples.size() < 5 || (seconds_since(begin) < 0.3 && samples.size() < 200)) {
    auto start = std::chrono::steady_clock::now();
    fn();
    synchronize(device);
    samples.push_back(seconds_since(start));
  }
  return median(samples);
}

/// GB/s of reading a tensor far larger than the caches (a sum: one read, no write).
double streaming_read_gbps(const torch::Device& device) {
  auto big = torch::ones({256 * 1024 * 1024 / 4}, torch::TensorOptions().device(device));  // 256 MiB
  const double s = time_of(device, [&] { big.sum().item<float>(); });
  return big.numel() * 4 / s / 1e9;
}

nlohmann::json bench_decode_linear(const torch::Device& device, int64_t m, int64_t n, int64_t k, torch::ScalarType dtype,
                                   const std::string& what) {
  torch::NoGradGuard no_grad;
  auto opts = torch::TensorOptions().device(device);
  auto w = torch::randn({n, k}, opts) * 0.02;  // (N, K)
  auto b = torch::randn({n}, opts);
  auto x = torch::randn({m, k}, opts);  // (M, K)
  auto packed = troupe::kernels::pack_linear(w, b, dtype);
  auto w_peer = w.to(dtype), b_peer = b.to(dtype), x_peer = x.to(dtype);
  const double kernel = time_of(device, [&] { troupe::kernels::decode_linear(x, packed); });
  const double peer = time_of(device, [&] { torch::nn::functional::linear(x_peer, w_peer, b_peer); });
  const double bytes = static_cast<double>(n) * k * (dtype == torch::kBFloat16 ? 2 : 4);
  return {{"op", "decode_linear"},
          {"what", what},
          {"M", m},
          {"N", n},
          {"K", k},
          {"dtype", dtype == torch::kBFloat16 ? "bf16" : "fp32"},
          {"kernel_gbps", bytes / kernel / 1e9},
          {"libtorch_gbps", bytes / peer / 1e9},
          {"speedup", peer / kernel}};
}

const char* dtype_name(torch::ScalarType dtype) { return dtype == torch::kBFloat16 ? "bf16" : "fp32"; }
int64_t dtype_bytes(torch::ScalarType dtype) { return dtype == torch::kBFloat16 ? 2 : 4; }

/// One row of the table: the op's bytes over each side's median time.
nlohmann::json row(const std::string& op, const std::string& shape, torch::ScalarType dtype, double bytes, double kernel,
                   double peer) {
  return {{"op", op},
          {"what", shape},
          {"dtype", dtype_name(dtype)},
          {"kernel_gbps", bytes / kernel / 1e9},
          {"libtorch_gbps", bytes / peer / 1e9},
          {"kernel_ms", kernel * 1e3},
          {"libtorch_ms", peer * 1e3},
          {"speedup", peer / kernel}};
}

/// One query per row over a (B, H_kv, L, D) cache with a quarter of row 0 padding.
nlohmann::json bench_decode_attention(const torch::Device& device, int64_t b, int64_t h, int64_t h_kv, int64_t l,
                                      int64_t d, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  auto opts = torch::TensorOptions().device(device).dtype(dtype);
  auto q = torch::randn({b, h, d}, opts);              // (B, H, D)
  auto k = torch::randn({b, h_kv, l, d}, opts);        // (B, H_kv, L, D)
  auto v = torch::randn({b, h_kv, l, d}, opts);        // (B, H_kv, L, D)
  auto mask = torch::ones({b, l}, torch::TensorOptions().device(device).dtype(torch::kLong));  // (B, L)
  mask.index_put_({0, torch::indexing::Slice(0, l / 4)}, 0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const double kernel = time_of(device, [&] { troupe::kernels::decode_attention(q, k, v, l, mask, scale); });
  const double peer = time_of(device, [&] { troupe::kernels::reference::decode_attention(q, k, v, l, mask, scale); });
  const double bytes = 2.0 * b * h_kv * l * d * dtype_bytes(dtype);
  auto r = row("decode_attention",
               "B" + std::to_string(b) + " H" + std::to_string(h) + "/" + std::to_string(h_kv) + " L" + std::to_string(l) +
                   " D" + std::to_string(d),
               dtype, bytes, kernel, peer);
  return r;
}

/// Next-token choice over (B, V) logits.
nlohmann::json bench_sampling(const torch::Device& device, int64_t b, int64_t vocab, const troupe::kernels::SamplingParams& params,
                              const std::string& what) {
  torch::NoGradGuard no_grad;
  auto logits = torch::randn({b, vocab}, torch::TensorOptions().device(device)) * 3;  // (B, V)
  auto generator = at::globalContext().defaultGenerator(device).clone();
  generator.set_current_seed(7);
  const double kernel = time_of(device, [&] { troupe::kernels::sample_next_tokens(logits, params, generator); });
  const double peer = time_of(device, [&] { troupe::kernels::reference::sample_next_tokens(logits, params, generator); });
  return row("sample_next_tokens", what + " B" + std::to_string(b) + " V" + std::to_string(vocab), torch::kFloat32,
             static_cast<double>(logits.numel()) * 4, kernel, peer);
}

/// log_softmax(logits)[target] forward and backward over (N, V) logits: the experience
/// step's and the losses' shape (N = B * T).
nlohmann::json bench_gather_logprobs(const torch::Device& device, int64_t n, int64_t vocab, torch::ScalarType dtype) {
  auto logits = (torch::randn({n, vocab}, torch::TensorOptions().device(device)) * 2).to(dtype).requires_grad_(true);  // (N, V)
  auto targets = torch::randint(vocab, {n}, torch::TensorOptions().device(device).dtype(torch::kLong));                // (N)
  auto forward_backward = [&](auto&& gather) {
    logits.mutable_grad() = torch::Tensor();
    gather(logits, targets).sum().backward();
  };
  const double kernel = time_of(device, [&] {
    forward_backward([](const torch::Tensor& l, const torch::Tensor& t) { return troupe::kernels::gather_logprobs(l, t); });
  });
  const double peer = time_of(device, [&] {
    forward_backward(
        [](const torch::Tensor& l, const torch::Tensor& t) { return troupe::kernels::reference::gather_logprobs(l, t); });
  });
  // Read the logits forward, read them again and write their gradient backward.
  const double bytes = 3.0 * n * vocab * dtype_bytes(dtype);
  return row("gather_logprobs", "fwd+bwd N" + std::to_string(n) + " V" + std::to_string(vocab), dtype, bytes, kernel, peer);
}

/// One AdamW step over `tensors` parameters of `numel` elements each.
nlohmann::json bench_fused_adamw(const torch::Device& device, int64_t tensors, int64_t numel) {
  torch::NoGradGuard no_grad;
  auto opts = torch::TensorOptions().device(device);
  std::vector<torch::Tensor> params, grads, m, v;
  for (int64_t i = 0; i < tensors; ++i) {
    params.push_back(torch::randn({numel}, opts));
    grads.push_back(torch::randn({numel}, opts) * 1e-2);
    m.push_back(torch::zeros({numel}, opts));
    v.push_back(torch::zeros({numel}, opts));
  }
  std::vector<int64_t> steps(tensors, 1);
  troupe::kernels::AdamWHyper hyper;
  hyper.weight_decay = 0.01;
  const double kernel = time_of(device, [&] { troupe::kernels::fused_adamw(params, grads, m, v, steps, hyper); });
  const double peer = time_of(device, [&] { troupe::kernels::reference::fused_adamw(params, grads, m, v, steps, hyper); });
  // Reads param, grad, exp_avg, exp_avg_sq; writes param, exp_avg, exp_avg_sq.
  const double bytes = 7.0 * tensors * numel * 4;
  return row("fused_adamw", std::to_string(tensors) + " x " + std::to_string(numel), torch::kFloat32, bytes, kernel, peer);
}

void print_row(const nlohmann::json& r) {
  std::printf("%-18s %-30s %5s %9.2f %9.2f %10.1f %10.1f %7.2fx\n", r["op"].get<std::string>().c_str(),
              r["what"].get<std::string>().c_str(), r["dtype"].get<std::string>().c_str(), r["kernel_ms"].get<double>(),
              r["libtorch_ms"].get<double>(), r["kernel_gbps"].get<double>(), r["libtorch_gbps"].get<double>(),
              r["speedup"].get<double>());
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
      return std::string(argv[++i]);
    };
    if (arg == "--device") options.device = value();
    else if (arg == "--threads") options.threads = std::stoi(value());
    else if (arg == "--json") options.json = value();
    else {
      std::cerr << "usage: troupe_bench_kernels [--device cpu|cuda] [--threads N] [--json FILE]\n";
      return 2;
    }
  }
  try {
    if (options.threads > 0) at::set_num_threads(options.threads);
    const torch::Device device(options.device);
    nlohmann::json out;
    out["device"] = options.device;
    out["threads"] = at::get_num_threads();
    out["streaming_read_gbps"] = streaming_read_gbps(device);
    std::printf("streaming read: %.1f GB/s (%d threads)\n", out["streaming_read_gbps"].get<double>(), at::get_num_threads());
    std::printf("%-16s %-22s %4s %6s %6s %5s %12s %12s %8s\n", "op", "shape", "M", "N", "K", "dtype", "kernel GB/s",
                "torch GB/s", "speedup");
    struct Shape {
      const char* what;
      int64_t n, k;
    };
    const Shape shapes[] = {{"opt-125m attn", 768, 768},   {"opt-125m fc1", 3072, 768},   {"opt-125m fc2", 768, 3072},
                            {"opt-125m lm_head", 50272, 768}, {"opt-1.3b fc1", 8192, 2048}, {"odd", 1000, 999}};
    for (auto dtype : {torch::kFloat32, torch::kBFloat16})
      for (const auto& shape : shapes)
        for (int64_t m : {1, 8, 32, 128}) {
          auto row = bench_decode_linear(device, m, shape.n, shape.k, dtype, shape.what);
          std::printf("%-16s %-22s %4lld %6lld %6lld %5s %12.1f %12.1f %7.2fx\n", "decode_linear", shape.what,
                      static_cast<long long>(m), static_cast<long long>(shape.n), static_cast<long long>(shape.k),
                      row["dtype"].get<std::string>().c_str(), row["kernel_gbps"].get<double>(),
                      row["libtorch_gbps"].get<double>(), row["speedup"].get<double>());
          out["rows"].push_back(row);
        }
    std::printf("\n%-18s %-30s %5s %9s %9s %10s %10s %8s\n", "op", "shape", "dtype", "kernel ms", "torch ms",
                "kernel GB/s", "torch GB/s", "speedup");
    auto add = [&](nlohmann::json r) {
      print_row(r);
      out["rows"].push_back(std::move(r));
    };
    for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      for (int64_t b : {1, 8}) add(bench_decode_attention(device, b, 12, 12, 256, 64, dtype));   // OPT-125m
      for (int64_t b : {1, 8}) add(bench_decode_attention(device, b, 12, 12, 1024, 64, dtype));  // long cache
      add(bench_decode_attention(device, 4, 32, 8, 512, 128, dtype));                           // Llama GQA 4
    }
    troupe::kernels::SamplingParams greedy, filtered, plain;
    filtered.do_sample = plain.do_sample = true;
    filtered.temperature = 0.7;
    filtered.top_k = 50;
    filtered.top_p = 0.9;
    for (int64_t b : {1, 8}) {
      add(bench_sampling(device, b, 50272, greedy, "greedy"));
      add(bench_sampling(device, b, 50272, plain, "T=1"));
      add(bench_sampling(device, b, 50272, filtered, "T=.7 k=50 p=.9"));
    }
    for (auto dtype : {torch::kFloat32, torch::kBFloat16}) add(bench_gather_logprobs(device, 512, 50272, dtype));
    add(bench_fused_adamw(device, 24, 1 << 20));  // ~25M parameters
    if (!options.json.empty()) std::ofstream(options.json) << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "troupe_bench_kernels: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
