#pragma once
/// Linear layers trained under autocast without keeping their weights' narrow copies.
#include <torch/types.h>

namespace troupe::models {

/// Whether recast_linear serves this product: autograd on, autocast on for x's device
/// with a narrower dtype than the weight, and the weight trained in fp32.
bool recasts_under_autocast(const torch::Tensor& x, const torch::Tensor& weight);

/// x (..., in) times `weight` (out, in), or (in, out) when `transposed`, plus `bias`
/// (out) if defined, computed as autocast computes it: x, weight and bias cast to the
/// autocast dtype, the product in that dtype. Autocast's own product keeps each
/// weight's cast copy from the forward until that layer's backward: 2 bytes per
/// parameter alive across the pass (about 240 MiB for OPT-125m in bf16). This one keeps
/// the fp32 weight, which lives anyway, and casts it again in the backward.
torch::Tensor recast_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            bool transposed);

}  // namespace troupe::models
