// reference::decode_attention: what the models' prefill path computes for one new
// query, in LibTorch ops (SDPA with an additive mask over the first `length` positions).
#include <troupe/kernels/decode_attention.hpp>

#include <limits>
#include <optional>

#include <torch/torch.h>

namespace troupe::kernels::reference {

torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                               int64_t length, const torch::Tensor& key_mask, double scale,
                               const torch::Tensor& row_lengths) {
  TORCH_CHECK(q.dim() == 3 && k_cache.dim() == 4, "reference::decode_attention: q (B, H, D), caches (B, H_kv, C, D)");
  const int64_t b = q.size(0);
  auto k = k_cache.narrow(2, 0, length).to(q.scalar_type());  // (B, H_kv, L, D)
  auto v = v_cache.narrow(2, 0, length).to(q.scalar_type());
  std::optional<torch::Tensor> additive;  // none: every position may be attended
  if (key_mask.defined() || row_lengths.defined()) {
    auto allowed = key_mask.defined() ? (key_mask.narrow(1, 0, length) != 0)
                                      : torch::ones({b, length}, torch::TensorOptions().dtype(torch::kBool));  // (B, L)
    auto newest = row_lengths.defined() ? row_lengths.to(torch::kLong).cpu() - 1
                                        : torch::full({b}, length - 1, torch::kLong);  // (B)
    auto pos = torch::arange(length).view({1, length});                                // (1, L)
    allowed = allowed.cpu().logical_and(pos <= newest.view({b, 1}));
    allowed = allowed.logical_or(pos == newest.view({b, 1})).to(q.device());  // the newest position always
    additive = torch::zeros({b, 1, 1, length}, q.options())
                   .masked_fill_(allowed.logical_not().view({b, 1, 1, length}),
                                 -std::numeric_limits<float>::infinity());
  }
  const bool gqa = q.size(1) != k.size(1);
  auto out = at::scaled_dot_product_attention(q.unsqueeze(2), k, v, additive, 0.0, /*is_causal=*/false, scale,
                                              gqa);  // (B, H, 1, D)
  return out.squeeze(2);                           // (B, H, D)
}

}  // namespace troupe::kernels::reference
