/// Each kernel beside its LibTorch counterpart over decode-sized shapes: GB/s of weight
/// streamed (decode_linear) or elements per second, plus a streaming-read probe that
/// says what the memory system allows in the same run.
///   troupe_bench_kernels [--device cpu|cuda] [--threads N] [--json FILE]
#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <troupe/kernels/decode_linear.hpp>

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
        for (int64_t m : {1, 8, 32}) {
          auto row = bench_decode_linear(device, m, shape.n, shape.k, dtype, shape.what);
          std::printf("%-16s %-22s %4lld %6lld %6lld %5s %12.1f %12.1f %7.2fx\n", "decode_linear", shape.what,
                      static_cast<long long>(m), static_cast<long long>(shape.n), static_cast<long long>(shape.k),
                      row["dtype"].get<std::string>().c_str(), row["kernel_gbps"].get<double>(),
                      row["libtorch_gbps"].get<double>(), row["speedup"].get<double>());
          out["rows"].push_back(row);
        }
    if (!options.json.empty()) std::ofstream(options.json) << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "troupe_bench_kernels: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
