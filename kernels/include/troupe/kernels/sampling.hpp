#pragma once
/// Next-token choice over logits (B, V) in one pass per row: greedy argmax, or
/// temperature, top-k, top-p and the multinomial draw fused.
///
/// The draw is the exponential-race form torch's multinomial (one sample, no
/// replacement) uses: token = argmax_i p_i / q_i with q_i ~ Exp(1) drawn by
/// `q.exponential_(1, generator)` over a (B, V) fp32 tensor. Since p_i is the
/// renormalised softmax of the kept logits, argmax p_i / q_i = argmax over kept i of
/// l_i / T - log q_i, so no softmax over the vocabulary is needed and the generator is
/// consumed exactly as today's path (softmax, masked tail, at::multinomial) consumes
/// it: for a seed, the same tokens (tested).
#include <cstdint>

#include <ATen/core/Generator.h>
#include <torch/types.h>

namespace troupe::kernels {

struct SamplingParams {
  bool do_sample = false;
  double temperature = 1.0;  ///< > 0 when sampling
  int64_t top_k = 0;         ///< 0 = off
  double top_p = 1.0;        ///< 1 = off
};

/// The values `torch::empty({n}).exponential_(1, generator)` gives on the CPU, bit for
/// bit, advancing the generator as it does: the draw the sampler makes (n) fp32.
torch::Tensor exponential_draw(int64_t n, at::Generator& generator);

/// Token ids (B) int64 from logits (B, V) of any float dtype.
torch::Tensor sample_next_tokens(const torch::Tensor& logits, const SamplingParams& params, at::Generator& generator);

namespace reference {
/// Softmax, top-k / top-p masks (Hugging Face's warpers) and at::multinomial, in LibTorch ops.
torch::Tensor sample_next_tokens(const torch::Tensor& logits, const SamplingParams& params, at::Generator& generator);
}  // namespace reference

}  // namespace troupe::kernels
