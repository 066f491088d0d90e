#include <troupe/rl/kl.hpp>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::rl {

KlEstimator parse_kl_estimator(const std::string& name) {
  if (name == "k1") return KlEstimator::K1;
  if (name == "k2") return KlEstimator::K2;
  if (name == "k3") return KlEstimator::K3;
  throw Error("unknown KL estimator '" + name + "' (known: k1, k2, k3)");
}

torch::Tensor kl_estimate(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs,
                          KlEstimator estimator) {
  TORCH_CHECK(logprobs.sizes() == ref_logprobs.sizes(), "kl_estimate: logprobs ", logprobs.sizes(),
              " and ref_logprobs ", ref_logprobs.sizes(), " must have the same shape");
  const auto log_ratio = logprobs - ref_logprobs;  // log pi(a) / pi_ref(a), same shape
  switch (estimator) {
    case KlEstimator::K1: return log_ratio;
    case KlEstimator::K2: return 0.5 * log_ratio.pow(2);
    // With r = pi_ref / pi: (r - 1) - log r.
    case KlEstimator::K3: return torch::exp(-log_ratio) - 1 + log_ratio;
  }
  throw Error("kl_estimate: unknown estimator");
}

}  // namespace troupe::rl
