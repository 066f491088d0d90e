#include <troupe/rl/masked_ops.hpp>

#include <torch/torch.h>

namespace troupe::rl {
namespace {

void check_same_shape(const char* where, const torch::Tensor& x, const torch::Tensor& mask) {
  TORCH_CHECK(x.sizes() == mask.sizes(), where, ": x ", x.sizes(), " and mask ", mask.sizes(),
              " must have the same shape");
}

}  // namespace

torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& mask) {
  check_same_shape("masked_mean", x, mask);
  // where() rather than x * mask: a non-finite value off the mask must not turn into NaN.
  const auto keep = mask.ne(0);
  return torch::where(keep, x, torch::zeros({}, x.options())).sum() / keep.sum().to(x.scalar_type()).clamp_min(1);
}

torch::Tensor sequence_mean(const torch::Tensor& x, const torch::Tensor& mask) {
  check_same_shape("sequence_mean", x, mask);
  TORCH_CHECK(x.dim() == 2, "sequence_mean: x must be (B, L), got ", x.sizes());
  const auto keep = mask.ne(0);                                                    // (B, L)
  const auto per_row = torch::where(keep, x, torch::zeros({}, x.options())).sum(1) /
                       keep.sum(1).to(x.scalar_type()).clamp_min(1);                // (B,)
  return per_row.mean();                                     // ()
}

torch::Tensor whiten(const torch::Tensor& x, const torch::Tensor& mask, bool shift_mean) {
  check_same_shape("whiten", x, mask);
  const auto m = mask.to(x.scalar_type());
  const auto n = m.sum();  // ()
  TORCH_CHECK(n.item<double>() >= 2, "whiten: needs at least 2 masked elements, got ", n.item<double>());
  const auto mean = (x * m).sum() / n;                                // ()
  const auto var = ((x - mean).pow(2) * m).sum() / (n - 1);           // () Bessel-corrected
  auto out = (x - mean) * torch::rsqrt(var + 1e-8);
  if (!shift_mean) out = out + mean;
  return out * m;
}

}  // namespace troupe::rl
