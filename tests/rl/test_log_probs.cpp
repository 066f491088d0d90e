/// Log-probs of sequences from logits: the plain version against PyTorch, the chunked
/// one against the plain one (values and gradients).
#include <troupe/rl/log_probs.hpp>

#include "rl_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

TEST_CASE("gather_log_probs equals PyTorch's log_softmax + gather", "[log_probs][reference]") {
  const auto fixture = troupe::test::rl_fixture("log_probs.json");
  const auto logits = fixture_tensor(fixture.at("logits"));        // (B, T, V)
  const auto sequences = fixture_tensor(fixture.at("sequences"));  // (B, T)
  const auto expected = fixture_tensor(fixture.at("logprobs"));    // (B, T-1)
  CHECK_CLOSE(rl::gather_log_probs(logits, sequences), expected, 1e-6);
  CHECK_CLOSE(rl::gather_log_probs_chunked(logits, sequences, 2), expected, 1e-6);
}

TEST_CASE("chunked log-probs equal the plain ones for every chunk size", "[log_probs]") {
  torch::manual_seed(7);
  const int64_t B = 3, T = 17, V = 50;
  const auto logits = 4.0 * torch::randn({B, T, V});            // (B, T, V)
  const auto sequences = torch::randint(0, V, {B, T}, torch::kLong);  // (B, T)
  const auto plain = rl::gather_log_probs(logits, sequences);   // (B, T-1)
  for (int64_t rows : {1, 3, 16, 1024}) {
    INFO("rows_per_chunk " << rows);
    CHECK_CLOSE(rl::gather_log_probs_chunked(logits, sequences, rows), plain, 2e-6);
  }
  // Unshifted form, on a non-contiguous slice.
  const auto sliced = logits.narrow(1, 1, T - 1);  // (B, T-1, V)
  const auto labels = sequences.narrow(1, 0, T - 1);
  CHECK_CLOSE(rl::token_log_probs_chunked(sliced, labels, 5), rl::token_log_probs(sliced, labels), 2e-6);
}

TEST_CASE("chunked log-probs backpropagate the same gradient", "[log_probs]") {
  torch::manual_seed(11);
  const auto sequences = torch::randint(0, 9, {2, 6}, torch::kLong);  // (B, T)
  const auto weights = torch::randn({2, 5});                        // (B, T-1)
  auto a = torch::randn({2, 6, 9}).requires_grad_();                // (B, T, V)
  auto b = a.detach().clone().requires_grad_();
  (rl::gather_log_probs(a, sequences) * weights).sum().backward();
  (rl::gather_log_probs_chunked(b, sequences, 4) * weights).sum().backward();
  CHECK_CLOSE(b.grad(), a.grad(), 1e-6);
  // The last position predicts nothing: no gradient there.
  CHECK(b.grad().select(1, 5).abs().max().item<float>() == 0.0f);
}

TEST_CASE("bfloat16 logits give float32 log-probs close to the float32 ones", "[log_probs]") {
  torch::manual_seed(3);
  const auto logits = torch::randn({2, 8, 30});                      // (B, T, V)
  const auto sequences = torch::randint(0, 30, {2, 8}, torch::kLong);  // (B, T)
  const auto half = logits.to(torch::kBFloat16);
  const auto out = rl::gather_log_probs_chunked(half, sequences, 3);
  CHECK(out.scalar_type() == torch::kFloat);
  CHECK_CLOSE(out, rl::gather_log_probs(half.to(torch::kFloat), sequences), 1e-5);
}

TEST_CASE("log-probs reject mismatched shapes", "[log_probs]") {
  const auto logits = torch::randn({2, 5, 7});
  CHECK_THROWS(rl::gather_log_probs(logits, torch::zeros({2, 4}, torch::kLong)));
  CHECK_THROWS(rl::gather_log_probs_chunked(logits, torch::zeros({3, 5}, torch::kLong)));
  CHECK_THROWS(rl::token_log_probs(logits, torch::zeros({2, 5})));  // float labels
  CHECK_THROWS(rl::gather_log_probs_chunked(logits, torch::zeros({2, 5}, torch::kLong), 0));
}
