/// Reward normalisation (batch and running) and clipping, shared by the critic-free
/// algorithms, by hand and against PyTorch.
#include <cmath>

#include <troupe/common/error.hpp>
#include <troupe/rl/reward_normalization.hpp>

#include "algorithm_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

TEST_CASE("reward normalisation by hand", "[reward_normalization][by_hand]") {
  // [1, 2, 3]: mean 2, std 1 -> -1, 0, 1; clipped at 0.5 -> -0.5, 0, 0.5.
  rl::RewardNormalizer batch({rl::RewardNormalization::Batch, 0.5});
  CHECK_CLOSE(batch(torch::tensor({1.0f, 2.0f, 3.0f})), torch::tensor({-0.5f, 0.0f, 0.5f}), 1e-6);
  // Running: [1, 3] alone (mean 2, std sqrt 2), then [5] with all of 1, 3, 5 (mean 3, std 2).
  rl::RewardNormalizer running({rl::RewardNormalization::Running, 0.0});
  const float r = static_cast<float>(1 / std::sqrt(2.0));
  CHECK_CLOSE(running(torch::tensor({1.0f, 3.0f})), torch::tensor({-r, r}), 1e-6);
  CHECK_CLOSE(running(torch::tensor({5.0f})), torch::tensor({1.0f}), 1e-6);
  CHECK(running.running().count() == 3);
  // Off: the scores as they are, but clipped when asked.
  rl::RewardNormalizer clip_only({rl::RewardNormalization::None, 2.0});
  CHECK_CLOSE(clip_only(torch::tensor({-7.0f, 1.0f, 3.0f})), torch::tensor({-2.0f, 1.0f, 2.0f}), 0.0);
}

TEST_CASE("running reward normalisation equals the statistics of all scores so far", "[reward_normalization][reference]") {
  const auto fixture = troupe::test::rl_fixture("reward_normalization.json");
  const auto first = fixture_tensor(fixture.at("first")), second = fixture_tensor(fixture.at("second"));
  rl::RewardNormalizer batch({rl::RewardNormalization::Batch, 0.0});
  CHECK_CLOSE(batch(first), fixture_tensor(fixture.at("batch_first")), 1e-6);
  rl::RewardNormalizer running({rl::RewardNormalization::Running, 0.0});
  CHECK_CLOSE(running(first), fixture_tensor(fixture.at("running_first")), 1e-6);
  CHECK_CLOSE(running(second), fixture_tensor(fixture.at("running_second")), 1e-6);
  rl::RewardNormalizer clipped({rl::RewardNormalization::Running, 0.5});
  clipped(first);
  CHECK_CLOSE(clipped(second), fixture_tensor(fixture.at("running_second_clipped")), 1e-6);
}

TEST_CASE("reward options are read by name and checked", "[reward_normalization][options]") {
  rl::AlgorithmOptions options{{"normalize_reward", 2}, {"reward_clip", 3}};
  const auto r = rl::RewardOptions::from_options(options, "rloo");
  CHECK(r.normalize == rl::RewardNormalization::Running);
  CHECK(r.clip == 3.0);
  CHECK(options.unread_keys().empty());
  CHECK_THROWS_WITH(rl::RewardOptions::from_options({{"normalize_reward", 3}}, "rloo"),
                    Catch::Contains("rloo") && Catch::Contains("normalize_reward") && Catch::Contains("running"));
  CHECK_THROWS_WITH(rl::RewardOptions::from_options({{"reward_clip", -1}}, "dr_grpo"),
                    Catch::Contains("dr_grpo") && Catch::Contains("reward_clip"));
}
