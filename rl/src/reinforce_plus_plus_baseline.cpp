#include <troupe/rl/reinforce_plus_plus_baseline.hpp>

namespace troupe::rl {
namespace {

ReinforcePlusPlusConfig with_baseline(ReinforcePlusPlusConfig config) {
  config.group_baseline = true;
  config.gamma = 1.0;
  return config;
}

}  // namespace

ReinforcePlusPlusConfig ReinforcePlusPlusBaseline::config_from_options(const AlgorithmOptions& options) {
  return ReinforcePlusPlusConfig::from_options(options, /*group_baseline=*/true);
}

ReinforcePlusPlusBaseline::ReinforcePlusPlusBaseline(ReinforcePlusPlusConfig config)
    : ReinforcePlusPlus(with_baseline(config)) {}

}  // namespace troupe::rl
