#pragma once
/// REINFORCE++-baseline (Hu 2025; OpenRLHF's advantage_estimator "reinforce_baseline"):
/// k answers per prompt, each score minus its group's mean score, then REINFORCE++'s KL
/// shaping, returns (gamma 1) and whitening over the batch.
#include <troupe/rl/reinforce_plus_plus.hpp>

namespace troupe::rl {

class ReinforcePlusPlusBaseline : public ReinforcePlusPlus {
 public:
  /// ReinforcePlusPlusConfig::from_options(options, /*group_baseline=*/true).
  static ReinforcePlusPlusConfig config_from_options(const AlgorithmOptions& options);

  /// Defaults: 4 samples per prompt; `config` gets group_baseline on and gamma 1.
  explicit ReinforcePlusPlusBaseline(ReinforcePlusPlusConfig config = config_from_options({}));

  std::string name() const override { return "reinforce++_baseline"; }
};

}  // namespace troupe::rl
