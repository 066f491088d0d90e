// sample_next_tokens rows: the fused kernel against softmax + warpers + multinomial,
// both from generators with the same seed. Outputs: the tokens, and a draw from each
// generator afterwards (the kernel must consume it exactly as multinomial does). Both
// compared exactly.
//
// Logits are Gaussian quantiles in a random order: all distinct, also after the
// temperature, so no tie decides a token (the reference's sort orders ties its own way).
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <string>

#include <troupe/kernels/sampling.hpp>

#include "consistency_table.hpp"

namespace {

using troupe::test::ConsistencyOutputs;
using troupe::test::ConsistencyRow;

struct SamplingCase {
  int64_t b, v;
  troupe::kernels::SamplingParams params;
  double spread = 3.0;  // standard deviation of the logits: larger = a more peaked softmax
  torch::ScalarType dtype = torch::kFloat32;
  uint64_t seed = 0;
  int64_t seeds = 1;  // rows over this many consecutive seeds, outputs concatenated
};

/// (B, V) logits: each row a random permutation of V distinct Gaussian quantiles.
torch::Tensor distinct_logits(int64_t b, int64_t v, double spread, at::Generator& gen) {
  auto u = (torch::arange(v, torch::kDouble) + 0.5) / static_cast<double>(v);
  auto quantiles = (spread * std::sqrt(2.0) * torch::erfinv(2.0 * u - 1.0)).to(torch::kFloat32);  // (V)
  auto logits = torch::empty({b, v}, torch::kFloat32);
  for (int64_t r = 0; r < b; ++r) logits[r] = quantiles.index_select(0, torch::randperm(v, gen));
  return logits;
}

std::string describe(const SamplingCase& c) {
  std::string s = "B=" + std::to_string(c.b) + " V=" + std::to_string(c.v);
  if (!c.params.do_sample) return s + " greedy";
  s += " T=" + std::to_string(c.params.temperature).substr(0, 4) + " top_k=" + std::to_string(c.params.top_k) +
       " top_p=" + std::to_string(c.params.top_p).substr(0, 4) + " spread=" + std::to_string(c.spread).substr(0, 4);
  if (c.seeds > 1) s += " over " + std::to_string(c.seeds) + " seeds";
  return s;
}

void add(std::vector<ConsistencyRow>& rows, const SamplingCase& c) {
  ConsistencyRow row;
  row.op = "sample_next_tokens";
  row.shape = describe(c);
  row.dtype = c.dtype == torch::kFloat32 ? "fp32" : (c.dtype == torch::kBFloat16 ? "bf16" : "fp16");
  row.device = "cpu";
  row.max_nmse = 0.0;  // token ids: equal or wrong
  row.run = [c] {
    std::vector<torch::Tensor> kernel_tokens, reference_tokens, kernel_after, reference_after;
    for (int64_t i = 0; i < c.seeds; ++i) {
      const uint64_t seed = c.seed + static_cast<uint64_t>(i);
      auto data_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1000003);
      auto logits = distinct_logits(c.b, c.v, c.spread, data_gen).to(c.dtype);  // (B, V)
      auto kernel_gen = at::make_generator<at::CPUGeneratorImpl>(seed);
      auto reference_gen = at::make_generator<at::CPUGeneratorImpl>(seed);
      kernel_tokens.push_back(troupe::kernels::sample_next_tokens(logits, c.params, kernel_gen));
      reference_tokens.push_back(troupe::kernels::reference::sample_next_tokens(logits, c.params, reference_gen));
      kernel_after.push_back(torch::rand({4}, kernel_gen));
      reference_after.push_back(torch::rand({4}, reference_gen));
    }
    ConsistencyOutputs out;
    out.kernel = {torch::cat(kernel_tokens), torch::cat(kernel_after)};
    out.reference = {torch::cat(reference_tokens), torch::cat(reference_after)};
    return out;
  };
  rows.push_back(std::move(row));
}

troupe::kernels::SamplingParams sampled(double temperature, int64_t top_k, double top_p) {
  troupe::kernels::SamplingParams p;
  p.do_sample = true;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  return p;
}

}  // namespace

TROUPE_CONSISTENCY_ROWS(rows) {
  const int64_t opt_vocab = 50272;
  troupe::kernels::SamplingParams greedy;
  add(rows, {3, opt_vocab, greedy, 3.0, torch::kFloat32, 1});
  add(rows, {2, 1001, greedy, 3.0, torch::kBFloat16, 2});  // bf16 ties: both take the first
  add(rows, {0, 100, greedy, 3.0, torch::kFloat32, 3});
  // top_k 1 / 50 / V, top_p 0.5 / 0.9 / 1, temperatures 0.7 and 1.3.
  add(rows, {4, opt_vocab, sampled(0.7, 50, 1.0), 3.0, torch::kFloat32, 10});
  add(rows, {3, opt_vocab, sampled(1.3, 0, 0.9), 3.0, torch::kFloat32, 11});
  add(rows, {3, 50257, sampled(1.0, 50257, 0.5), 3.0, torch::kFloat32, 12});
  add(rows, {2, 1001, sampled(1.3, 1, 1.0), 3.0, torch::kFloat32, 13});
  add(rows, {3, 32003, sampled(0.7, 50, 0.9), 3.0, torch::kFloat32, 14});
  add(rows, {5, 37, sampled(1.0, 0, 0.5), 6.0, torch::kFloat32, 15});
  add(rows, {2, opt_vocab, sampled(1.0, 0, 1.0), 3.0, torch::kFloat32, 16});
  add(rows, {1, 50257, sampled(0.7, 0, 0.9), 8.0, torch::kFloat32, 17});  // a peaked distribution
  add(rows, {3, 999, sampled(1.3, 0, 0.0), 3.0, torch::kFloat32, 18});  // top_p 0: the top token only
  // bf16 / fp16 logits: ties abound, but neither top-k (cut by value) nor the race cares.
  add(rows, {2, opt_vocab, sampled(1.3, 50, 1.0), 3.0, torch::kBFloat16, 19});
  add(rows, {2, 1003, sampled(0.7, 0, 1.0), 3.0, torch::kHalf, 20});
  // An empty batch draws nothing from the generator.
  add(rows, {0, opt_vocab, sampled(0.7, 50, 0.9), 3.0, torch::kFloat32, 21});
  // Many seeds: every token equal.
  add(rows, {4, 5003, sampled(0.7, 0, 0.9), 2.0, torch::kFloat32, 100, 200});
  add(rows, {4, 2011, sampled(1.3, 50, 0.9), 3.0, torch::kFloat32, 400, 200});
}
