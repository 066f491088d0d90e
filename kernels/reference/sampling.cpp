// reference::sample_next_tokens: the path generation took before the fused kernel,
// Hugging Face's warpers in LibTorch ops, then at::multinomial.
#include <troupe/kernels/sampling.hpp>

#include <limits>

#include <torch/torch.h>

namespace troupe::kernels::reference {
namespace {

/// Masks logits (B, V) outside the k largest per row (ties with the k-th stay).
torch::Tensor keep_top_k(torch::Tensor logits, int64_t k) {
  if (k <= 0 || k >= logits.size(-1)) return logits;
  auto threshold = std::get<0>(logits.topk(k, -1)).narrow(-1, k - 1, 1);  // (B, 1)
  return logits.masked_fill(logits < threshold, -std::numeric_limits<float>::infinity());
}

/// Masks the tail of the distribution beyond cumulative probability p, keeping at
/// least one token, as Hugging Face's TopPLogitsWarper does.
torch::Tensor keep_top_p(torch::Tensor logits, double p) {
  if (p >= 1.0) return logits;
  auto [sorted, order] = logits.sort(-1, /*descending=*/false);  // (B, V) ascending
  auto cumulative = sorted.softmax(-1).cumsum(-1);
  auto remove_sorted = cumulative <= (1.0 - p);
  remove_sorted.narrow(-1, remove_sorted.size(-1) - 1, 1).fill_(false);
  auto remove = remove_sorted.scatter(-1, order, remove_sorted);
  return logits.masked_fill(remove, -std::numeric_limits<float>::infinity());
}

}  // namespace

torch::Tensor sample_next_tokens(const torch::Tensor& logits, const SamplingParams& params, at::Generator& generator) {
  if (!params.do_sample) return logits.argmax(-1);
  auto scores = logits.to(torch::kFloat32) / params.temperature;  // (B, V)
  scores = keep_top_p(keep_top_k(scores, params.top_k), params.top_p);
  auto probs = scores.softmax(-1);
  return at::multinomial(probs, 1, /*replacement=*/false, generator).squeeze(-1);  // (B)
}

}  // namespace troupe::kernels::reference
