#pragma once
/// Reductions over the action tokens of a batch, and advantage whitening.
#include <torch/types.h>

namespace troupe::rl {

/// sum(x * mask) / sum(mask) over all elements: DeepSpeed-Chat's token-level mean.
/// `mask` (any dtype, nonzero = counted) has x's shape. Values off the mask never count, even
/// inf or NaN; a mask with no token gives 0, not NaN.
torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& mask);

/// The mean over rows of each row's masked token mean (GRPO's 1/G sum_i 1/|o_i| sum_t);
/// x and mask (B, L). Rows without tokens count as 0.
torch::Tensor sequence_mean(const torch::Tensor& x, const torch::Tensor& mask);

/// Whitens x over its masked elements: (x - mean) / sqrt(var + 1e-8), with the mean
/// and the Bessel-corrected variance of the masked elements (as TRL's masked_whiten);
/// with `shift_mean` false the mean is added back. Elements outside the mask are 0.
/// Needs at least two masked elements.
torch::Tensor whiten(const torch::Tensor& x, const torch::Tensor& mask, bool shift_mean = true);

}  // namespace troupe::rl
