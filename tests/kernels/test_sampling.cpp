// sample_next_tokens beyond the consistency rows: token-for-token agreement with the
// LibTorch path over many seeds (counted), and what it refuses.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <iostream>
#include <limits>

#include <troupe/common/error.hpp>
#include <troupe/kernels/sampling.hpp>

using namespace troupe;

namespace {

kernels::SamplingParams sampled(double temperature, int64_t top_k, double top_p) {
  kernels::SamplingParams p;
  p.do_sample = true;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  return p;
}

}  // namespace

TEST_CASE("fused sampling draws the tokens softmax + multinomial draws, seed for seed", "[kernels][sampling]") {
  // Logits as a model gives them (continuous values: exact ties have probability ~0),
  // OPT's vocabulary, the settings RLHF runs use.
  const std::vector<kernels::SamplingParams> settings = {sampled(1.0, 0, 1.0), sampled(0.7, 50, 1.0),
                                                         sampled(1.3, 0, 0.9), sampled(1.0, 50, 0.9),
                                                         sampled(0.7, 0, 0.5)};
  int64_t total = 0, equal = 0;
  for (size_t s = 0; s < settings.size(); ++s) {
    for (uint64_t seed = 0; seed < 60; ++seed) {
      auto data = at::make_generator<at::CPUGeneratorImpl>(seed * 7919 + s);
      auto logits = torch::randn({4, 50272}, data) * 2.5;  // (B, V)
      auto a = at::make_generator<at::CPUGeneratorImpl>(seed);
      auto b = at::make_generator<at::CPUGeneratorImpl>(seed);
      auto mine = kernels::sample_next_tokens(logits, settings[s], a);
      auto theirs = kernels::reference::sample_next_tokens(logits, settings[s], b);
      total += mine.numel();
      equal += mine.eq(theirs).sum().item<int64_t>();
      // The generators stay in step, so later draws agree too.
      REQUIRE(torch::equal(torch::rand({3}, a), torch::rand({3}, b)));
    }
  }
  std::cout << "sample_next_tokens: " << equal << " of " << total << " tokens equal to the LibTorch path\n";
  CHECK(equal == total);
}

TEST_CASE("the sampler's exponential draw is exponential_'s, bit for bit, and moves the generator as it does",
          "[kernels][sampling]") {
  for (const int64_t n : {1, 7, 623, 624, 625, 50272, 4 * 50272}) {
    for (uint64_t seed : {0, 1, 1234}) {
      auto a = at::make_generator<at::CPUGeneratorImpl>(seed);
      auto b = at::make_generator<at::CPUGeneratorImpl>(seed);
      torch::rand({5}, a);  // start mid-state, as a run does
      torch::rand({5}, b);
      auto mine = kernels::exponential_draw(n, a);
      auto theirs = torch::empty({n}, torch::kFloat32).exponential_(1, b);
      REQUIRE(torch::equal(mine, theirs));
      REQUIRE(torch::equal(torch::rand({3}, a), torch::rand({3}, b)));
    }
  }
}

TEST_CASE("fused sampling: top-p keeps the smallest set above p, at least one token", "[kernels][sampling]") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  // Probabilities 0.6, 0.3, 0.1.
  auto logits = torch::log(torch::tensor({{0.6f, 0.3f, 0.1f}})).repeat({256, 1});
  CHECK(kernels::sample_next_tokens(logits, sampled(1.0, 0, 0.5), gen).eq(0).all().item<bool>());
  CHECK(kernels::sample_next_tokens(logits, sampled(1.0, 0, 0.0), gen).eq(0).all().item<bool>());
  auto two = kernels::sample_next_tokens(logits, sampled(1.0, 0, 0.8), gen);
  CHECK(two.lt(2).all().item<bool>());
  CHECK(two.eq(1).any().item<bool>());
  auto all = kernels::sample_next_tokens(logits, sampled(1.0, 0, 1.0), gen);
  CHECK(all.eq(2).any().item<bool>());
  // top_k 2 then top_p 0.95 of what remains (0.667, 0.333): both stay.
  auto both = kernels::sample_next_tokens(logits, sampled(1.0, 2, 0.95), gen);
  CHECK(both.lt(2).all().item<bool>());
  CHECK(both.eq(1).any().item<bool>());
}

TEST_CASE("fused sampling: greedy takes the first largest logit, as argmax", "[kernels][sampling]") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto logits = torch::zeros({2, 40});
  logits[0][7] = 3.f;
  logits[0][21] = 3.f;
  logits[1][39] = 1.f;
  const auto tokens = kernels::sample_next_tokens(logits, {}, gen);
  CHECK(tokens[0].item<int64_t>() == 7);
  CHECK(tokens[1].item<int64_t>() == 39);
  // A transposed view (what a W h^T head returns) reads the same.
  auto transposed = logits.t().contiguous().t();
  CHECK(torch::equal(kernels::sample_next_tokens(transposed, {}, gen), tokens));
  CHECK(torch::equal(kernels::sample_next_tokens(transposed, sampled(1.0, 1, 1.0), gen), tokens));
}

TEST_CASE("fused sampling refuses what multinomial refuses", "[kernels][sampling]") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto logits = torch::randn({3, 20});
  CHECK_THROWS_AS(kernels::sample_next_tokens(logits, sampled(0.0, 0, 1.0), gen), Error);
  CHECK_THROWS_AS(kernels::sample_next_tokens(logits.to(torch::kLong), {}, gen), Error);
  auto with_nan = logits.clone();
  with_nan[1][4] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(kernels::sample_next_tokens(with_nan, sampled(1.0, 0, 1.0), gen), Error);
  auto masked = logits.clone();
  masked[2].fill_(-std::numeric_limits<float>::infinity());
  CHECK_THROWS_AS(kernels::sample_next_tokens(masked, sampled(1.0, 5, 0.9), gen), Error);
  // Greedy over a NaN takes it, as torch.argmax does.
  CHECK(kernels::sample_next_tokens(with_nan, {}, gen)[1].item<int64_t>() == 4);
}
