#include <troupe/rl/log_probs.hpp>

#include <vector>

#include <torch/torch.h>

namespace troupe::rl {
namespace {

void check_logits_labels(const char* where, const torch::Tensor& logits, const torch::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 3, where, ": logits must be (B, L, V), got ", logits.sizes());
  TORCH_CHECK(labels.dim() == 2 && labels.size(0) == logits.size(0) && labels.size(1) == logits.size(1),
              where, ": labels must be (B, L) = ", logits.sizes().slice(0, 2), ", got ", labels.sizes());
  TORCH_CHECK(c10::isIntegralType(labels.scalar_type(), false), where, ": labels must be token ids, got ",
              labels.scalar_type());
}

/// float32 for reduced-precision logits (log-probs feed exp(ratio)), else unchanged.
torch::ScalarType compute_type(const torch::Tensor& logits) {
  const auto type = logits.scalar_type();
  return (type == torch::kHalf || type == torch::kBFloat16) ? torch::kFloat : type;
}

void check_sequences(const char* where, const torch::Tensor& logits, const torch::Tensor& sequences) {
  TORCH_CHECK(logits.dim() == 3 && sequences.dim() == 2 && logits.size(0) == sequences.size(0) &&
                  logits.size(1) == sequences.size(1) && sequences.size(1) >= 2,
              where, ": logits must be (B, T, V) and sequences (B, T) with T >= 2, got ", logits.sizes(),
              " and ", sequences.sizes());
}

}  // namespace

torch::Tensor token_log_probs(const torch::Tensor& logits, const torch::Tensor& labels) {
  check_logits_labels("token_log_probs", logits, labels);
  auto log_p = torch::log_softmax(logits.to(compute_type(logits)), -1);  // (B, L, V)
  return log_p.gather(-1, labels.to(torch::kLong).unsqueeze(-1)).squeeze(-1);  // (B, L)
}

torch::Tensor token_log_probs_chunked(const torch::Tensor& logits, const torch::Tensor& labels,
                                      int64_t rows_per_chunk) {
  check_logits_labels("token_log_probs_chunked", logits, labels);
  TORCH_CHECK(rows_per_chunk >= 1, "token_log_probs_chunked: rows_per_chunk must be >= 1, got ", rows_per_chunk);
  const int64_t B = logits.size(0), L = logits.size(1);
  const auto type = compute_type(logits);
  const auto ids = labels.to(torch::kLong);  // (B, L)
  // Walk rows of each sequence; logits[b] is (L, V) with contiguous rows even when
  // `logits` is a [:, :-1] slice, so chunks are views and nothing is copied but the
  // chunk's own float32 upcast.
  std::vector<torch::Tensor> pieces;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t0 = 0; t0 < L; t0 += rows_per_chunk) {
      const int64_t n = std::min(rows_per_chunk, L - t0);
      auto chunk = logits[b].narrow(0, t0, n).to(type);                    // (n, V)
      auto picked = chunk.gather(-1, ids[b].narrow(0, t0, n).unsqueeze(-1)).squeeze(-1);  // (n,)
      pieces.push_back(picked - torch::logsumexp(chunk, -1));             // (n,)
    }
  }
  if (pieces.empty()) return torch::empty({B, L}, logits.options().dtype(type));
  return torch::cat(pieces, 0).view({B, L});  // (B, L)
}

torch::Tensor gather_log_probs(const torch::Tensor& logits, const torch::Tensor& sequences) {
  check_sequences("gather_log_probs", logits, sequences);
  const int64_t T = sequences.size(1);
  return token_log_probs(logits.narrow(1, 0, T - 1), sequences.narrow(1, 1, T - 1));  // (B, T-1)
}

torch::Tensor gather_log_probs_chunked(const torch::Tensor& logits, const torch::Tensor& sequences,
                                       int64_t rows_per_chunk) {
  check_sequences("gather_log_probs_chunked", logits, sequences);
  const int64_t T = sequences.size(1);
  return token_log_probs_chunked(logits.narrow(1, 0, T - 1), sequences.narrow(1, 1, T - 1), rows_per_chunk);
}

}  // namespace troupe::rl
