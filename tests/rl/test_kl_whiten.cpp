/// KL estimators, masked means and advantage whitening.
#include <troupe/rl/kl.hpp>
#include <troupe/rl/masked_ops.hpp>

#include "rl_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

TEST_CASE("KL estimators k1, k2, k3 equal PyTorch", "[kl][reference]") {
  const auto fixture = troupe::test::rl_fixture("kl.json");
  const auto lp = fixture_tensor(fixture.at("logprobs"));
  const auto ref = fixture_tensor(fixture.at("ref_logprobs"));
  CHECK_CLOSE(rl::kl_estimate(lp, ref, rl::parse_kl_estimator("k1")), fixture_tensor(fixture.at("k1")), 1e-6);
  CHECK_CLOSE(rl::kl_estimate(lp, ref, rl::parse_kl_estimator("k2")), fixture_tensor(fixture.at("k2")), 1e-6);
  CHECK_CLOSE(rl::kl_estimate(lp, ref, rl::parse_kl_estimator("k3")), fixture_tensor(fixture.at("k3")), 1e-6);
  CHECK_THROWS_WITH(rl::parse_kl_estimator("k4"), Catch::Contains("k1, k2, k3"));
}

TEST_CASE("KL estimators by hand", "[kl][by_hand]") {
  // log r = log pi - log pi_ref = 0.5:  k1 = 0.5, k2 = 0.125, k3 = e^-0.5 - 1 + 0.5
  const auto lp = torch::tensor({-1.0f, -2.0f});
  const auto ref = torch::tensor({-1.5f, -2.0f});
  CHECK_CLOSE(rl::kl_estimate(lp, ref, rl::KlEstimator::K1), torch::tensor({0.5f, 0.0f}), 1e-7);
  CHECK_CLOSE(rl::kl_estimate(lp, ref, rl::KlEstimator::K2), torch::tensor({0.125f, 0.0f}), 1e-7);
  CHECK_CLOSE(rl::kl_estimate(lp, ref, rl::KlEstimator::K3),
              torch::tensor({static_cast<float>(std::exp(-0.5) - 0.5), 0.0f}), 1e-7);
}

TEST_CASE("whiten equals TRL's masked_whiten over the mask", "[whiten][reference]") {
  const auto fixture = troupe::test::rl_fixture("kl.json");
  const auto x = fixture_tensor(fixture.at("x"));
  const auto mask = fixture_tensor(fixture.at("mask"));
  const auto w = rl::whiten(x, mask);
  CHECK_CLOSE(w, fixture_tensor(fixture.at("whitened")), 1e-6);
  CHECK_CLOSE(rl::whiten(x, mask, false), fixture_tensor(fixture.at("whitened_keep_mean")), 1e-6);
  // Mean 0 and (Bessel) variance 1 over the masked elements.
  CHECK(rl::masked_mean(w, mask).item<double>() == Approx(0.0).margin(1e-6));
  CHECK((w.pow(2) * mask).sum().item<double>() / (mask.sum().item<double>() - 1) == Approx(1.0).margin(1e-5));
  CHECK_THROWS(rl::whiten(x, torch::zeros_like(mask)));
}

TEST_CASE("masked means ignore what is off the mask, even NaN", "[masked]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto x = torch::tensor({{1.0f, 3.0f, nan}, {2.0f, nan, nan}});  // (2, 3)
  const auto mask = torch::tensor({{1, 1, 0}, {1, 0, 0}});
  CHECK(rl::masked_mean(x, mask).item<double>() == Approx(2.0));    // (1 + 3 + 2) / 3
  CHECK(rl::sequence_mean(x, mask).item<double>() == Approx(2.0));  // mean of 2 and 2
  const auto y = torch::tensor({{1.0f, 5.0f}, {4.0f, 0.0f}});
  const auto m = torch::tensor({{1, 1}, {1, 0}});
  CHECK(rl::masked_mean(y, m).item<double>() == Approx(10.0 / 3));
  CHECK(rl::sequence_mean(y, m).item<double>() == Approx((3.0 + 4.0) / 2));
  CHECK(rl::masked_mean(y, torch::zeros_like(m)).item<double>() == 0.0);
}
