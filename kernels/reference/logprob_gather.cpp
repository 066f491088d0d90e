// The log-prob gather in LibTorch ops: the fp32 log-softmax of the whole (..., V), a
// gather, and autograd through both.
#include <troupe/kernels/logprob_gather.hpp>

#include <torch/torch.h>

namespace troupe::kernels::reference {
namespace {

torch::Tensor log_softmax32(const torch::Tensor& logits, const torch::Tensor& targets) {
  TORCH_CHECK(logits.dim() >= 1 && targets.sizes() == logits.sizes().slice(0, logits.dim() - 1),
              "gather_logprobs: targets ", targets.sizes(), " must be logits ", logits.sizes(),
              " without the last dim");
  return logits.to(torch::kFloat32).log_softmax(-1);  // (..., V)
}

}  // namespace

torch::Tensor gather_logprobs(const torch::Tensor& logits, const torch::Tensor& targets,
                              std::optional<int64_t> ignore_index) {
  auto logp = log_softmax32(logits, targets);  // (..., V)
  auto index = targets.to(torch::kLong);
  if (!ignore_index) return logp.gather(-1, index.unsqueeze(-1)).squeeze(-1);
  auto ignored = index == *ignore_index;  // (...)
  auto picked = logp.gather(-1, index.masked_fill(ignored, 0).unsqueeze(-1)).squeeze(-1);
  return picked.masked_fill(ignored, 0);
}

std::pair<torch::Tensor, torch::Tensor> gather_logprobs_and_entropy(const torch::Tensor& logits,
                                                                    const torch::Tensor& targets) {
  auto logp = log_softmax32(logits, targets);  // (..., V)
  auto picked = logp.gather(-1, targets.to(torch::kLong).unsqueeze(-1)).squeeze(-1);
  auto entropy = -(logp.exp() * logp).sum(-1);
  return {picked, entropy};
}

}  // namespace troupe::kernels::reference
