#pragma once
// Raw next-token choice behind <troupe/kernels/sampling.hpp>, one row at a time. No
// LibTorch here: the launcher (src/sampling.cpp) converts the logits to fp32, draws
// the uniforms u (V) per row from the generator as torch's multinomial draws them for
// q ~ Exp(1), and splits the rows over threads.
//   logits (V) fp32 with element stride `stride`;  u (V) fp64 contiguous, in [0, 1)
#include <cmath>
#include <cstdint>
#include <vector>

namespace troupe::kernels::cpu {

struct SampleArgs {
  int64_t vocab = 0;
  float temperature = 1.f;  ///< divides the logits in fp32, as `logits / T` does
  int64_t top_k = 0;        ///< off when <= 0 or >= vocab
  double top_p = 1.0;       ///< off when >= 1
};

/// Per-thread buffers, grown on demand (reuse one across the rows of a thread).
struct SampleScratch {
  std::vector<float> scores;  // (V) logits / T
  std::vector<float> values;  // (V) copy for the top-k selection
  struct Candidate {
    float value;
    double weight;  // exp(value - max)
  };
  std::vector<Candidate> candidates;  // top-p's weighted selection
};

/// exponential_'s value for the uniform u: -log1p(-u) in double, rounded to fp32 (its
/// CPU kernel at rate 1, bit for bit).
inline float exponential_from_uniform(double u) { return static_cast<float>(-1.0 / 1.0 * std::log1p(-u)); }

/// Index of the first largest logit, a NaN counting as largest (as torch.argmax).
int64_t argmax_row(const float* logits, int64_t stride, int64_t vocab);

/// The sampled token of one row, or -1 when the row cannot be sampled (a NaN logit, no
/// finite largest logit: torch's multinomial refuses those rows too).
int64_t sample_row(const float* logits, int64_t stride, const double* u, const SampleArgs& a, SampleScratch& scratch);

}  // namespace troupe::kernels::cpu
