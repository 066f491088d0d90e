#include <troupe/rl/loss_reduction.hpp>

#include <algorithm>
#include <string>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/rl/masked_ops.hpp>

namespace troupe::rl {
namespace {

/// x where mask is nonzero, 0 elsewhere: a non-finite value off the mask never counts.
torch::Tensor on_mask(const torch::Tensor& x, const torch::Tensor& mask) {
  TORCH_CHECK(x.sizes() == mask.sizes() && x.dim() == 2, "loss reduction: x ", x.sizes(), " and mask ", mask.sizes(),
              " must both be (B, A)");
  return torch::where(mask.ne(0), x, torch::zeros({}, x.options()));  // (B, A)
}

}  // namespace

torch::Tensor minibatch_token_mean(const torch::Tensor& x, const torch::Tensor& mask, const Experience& exp) {
  if (!exp.minibatch_totals) return masked_mean(x, mask);
  const auto tokens = std::max<int64_t>(exp.minibatch_totals->action_tokens, 1);
  return on_mask(x, mask).sum() / static_cast<double>(tokens);  // ()
}

torch::Tensor minibatch_sequence_mean(const torch::Tensor& x, const torch::Tensor& mask, const Experience& exp) {
  if (!exp.minibatch_totals) return sequence_mean(x, mask);
  const auto per_row = on_mask(x, mask).sum(1) / mask.ne(0).sum(1).to(x.scalar_type()).clamp_min(1);  // (B,)
  return per_row.sum() / static_cast<double>(std::max<int64_t>(exp.minibatch_totals->rows, 1));       // ()
}

torch::Tensor minibatch_constant_length_mean(const torch::Tensor& x, const torch::Tensor& mask, const Experience& exp,
                                             int64_t length, const std::string& algorithm) {
  const int64_t rows = exp.minibatch_totals ? exp.minibatch_totals->rows : exp.batch_size();
  const int64_t width = exp.minibatch_totals ? exp.minibatch_totals->answer_width : exp.answer_length();
  if (length <= 0) length = width;
  if (width > length)
    throw Error(algorithm + ": answers are " + std::to_string(width) + " positions wide, more than the constant length " +
                std::to_string(length) + " the loss divides by (generate_max_len)");
  return on_mask(x, mask).sum() / static_cast<double>(std::max<int64_t>(rows, 1) * length);  // ()
}

}  // namespace troupe::rl
