#pragma once
#include <map>
/// What the critic-free algorithms do to a reward score before anything else:
/// normalise it (over the batch, or with running statistics) and clip it.
#include <string>

#include <torch/types.h>

#include <troupe/rl/algorithm.hpp>

namespace troupe::rl {

enum class RewardNormalization {
  None = 0,     ///< scores as the reward model or function gave them
  Batch = 1,    ///< (s - mean) / (std + 1e-8) over this batch's scores
  Running = 2,  ///< the same with the mean and std of every score seen so far (this batch included)
};

/// The options `normalize_reward` (0 = off, 1 = batch, 2 = running) and `reward_clip`
/// (> 0 clamps the score to [-reward_clip, reward_clip] after normalising; 0 = off).
struct RewardOptions {
  RewardNormalization normalize = RewardNormalization::None;
  double clip = 0.0;

  /// Reads both keys; throws troupe::Error naming `algorithm` and the key when a value
  /// is out of range.
  static RewardOptions from_options(const AlgorithmOptions& options, const std::string& algorithm);
};

/// Running mean and (Bessel-corrected) std of a stream of scores, merged a batch at a
/// time (Chan et al.'s parallel update, in double), as TRL's RunningMoments.
class RunningMoments {
 public:
  /// Adds the values of `x` (any shape).
  void update(const torch::Tensor& x);
  int64_t count() const { return count_; }
  double mean() const { return mean_; }
  /// The sample std of everything seen so far; 0 with fewer than two values.
  double stddev() const;
  /// The statistics as plain numbers (count, mean, m2), and back, for checkpoints.
  std::map<std::string, double> state() const;
  void restore_state(const std::map<std::string, double>& state);

 private:
  int64_t count_ = 0;
  double mean_ = 0.0;
  double m2_ = 0.0;  // sum of squared deviations from mean_
};

/// Applies RewardOptions to each batch of scores; holds the running statistics, so one
/// instance lives as long as the algorithm.
class RewardNormalizer {
 public:
  explicit RewardNormalizer(RewardOptions options = {}) : options_(options) {}

  /// scores (B,) -> (B,) float32: normalised as options say (Running first adds this
  /// batch to the statistics), then clipped. A batch of one row is only centred.
  torch::Tensor operator()(const torch::Tensor& scores);

  const RewardOptions& options() const { return options_; }
  const RunningMoments& running() const { return running_; }
  RunningMoments& running() { return running_; }

 private:
  RewardOptions options_;
  RunningMoments running_;
};

}  // namespace troupe::rl
