#pragma once
/// Option readers shared by the built-in algorithms (private to rl/).
#include <string>

#include <troupe/rl/algorithm.hpp>
#include <troupe/rl/kl.hpp>
#include "require.hpp"

namespace troupe::rl {

/// The option `kl_estimator` as a number (options are numbers): 1 = k1, 2 = k2, 3 = k3.
inline KlEstimator read_kl_estimator(const AlgorithmOptions& options, const std::string& algorithm,
                                     KlEstimator fallback) {
  const double value = options.get("kl_estimator", static_cast<double>(static_cast<int>(fallback) + 1));
  require_choice(algorithm, "kl_estimator", value, {1, 2, 3}, "k1, k2 or k3");
  return static_cast<KlEstimator>(static_cast<int>(value) - 1);
}

}  // namespace troupe::rl
