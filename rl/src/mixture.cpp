#include <troupe/rl/mixture.hpp>

#include <torch/torch.h>

#include <troupe/rl/log_probs.hpp>
#include <troupe/rl/masked_ops.hpp>

namespace troupe::rl {

torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels, int64_t ignore_index) {
  TORCH_CHECK(logits.dim() == 3 && labels.dim() == 2 && logits.size(0) == labels.size(0) &&
                  logits.size(1) == labels.size(1) && labels.size(1) >= 2,
              "causal_lm_loss: logits must be (B, T, V) and labels (B, T) with T >= 2, got ", logits.sizes(), " and ",
              labels.sizes());
  const int64_t T = labels.size(1);
  const auto targets = labels.narrow(1, 1, T - 1);  // (B, T-1)
  const auto keep = targets.ne(ignore_index);       // (B, T-1)
  // Ignored labels may be out of the vocabulary: gather at 0 there, the mask drops them.
  const auto safe = torch::where(keep, targets, torch::zeros({}, targets.options()));  // (B, T-1)
  const auto logprobs = token_log_probs_chunked(logits.narrow(1, 0, T - 1), safe);       // (B, T-1)
  return -masked_mean(logprobs, keep);
}

torch::Tensor mixture_loss(const torch::Tensor& logits, const torch::Tensor& labels, double unsup_coef) {
  return unsup_coef * causal_lm_loss(logits, labels);
}

}  // namespace troupe::rl
