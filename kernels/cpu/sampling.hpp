#pragma once
// Raw next-token choice behind <troupe/kernels/sampling.hpp>, one row at a time. No
// LibTorch here: the launcher (src/sampling.cpp) converts the logits to fp32, draws
// q ~ Exp(1) (V) per row from the generator as torch's multinomial does, and splits the
// rows over threads.
//   logits (V) fp32 with element stride `stride`;  q (V) fp32 contiguous
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

/// Index of the first largest logit, a NaN counting as largest (as torch.argmax).
int64_t argmax_row(const float* logits, int64_t stride, int64_t vocab);

/// The sampled token of one row, or -1 when the row cannot be sampled (a NaN logit, no
/// finite largest logit: torch's multinomial refuses those rows too).
int64_t sample_row(const float* logits, int64_t stride, const float* q, const SampleArgs& a, SampleScratch& scratch);

}  // namespace troupe::kernels::cpu
