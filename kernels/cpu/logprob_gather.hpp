#pragma once
// Raw log-prob gather kernels, one row of logits at a time (no LibTorch): the launcher
// (src/logprob_gather.cpp) checks shapes, finds each row and splits the rows over
// threads.
//   x  (V) fp32, or bf16 as its uint16_t bits
//   dx (V) in x's dtype
// Sums run in fp32 lanes per block of 256 logits, added up in double.
#include <cstdint>

#include "cpu/isa.hpp"

namespace troupe::kernels::cpu {

/// What the forward keeps of one row.
struct RowStats {
  float logsumexp = 0;  ///< log sum_j exp(x_j)
  float entropy = 0;    ///< -sum_j p_j log p_j (when asked)
};

/// The backward of one row: the gradient of g_lp * log p_target + g_ent * entropy,
///   dx_j = g_lp [j == target] - p_j (g_lp + g_ent (x_j - logsumexp + entropy)),
///   p_j = exp(x_j - logsumexp); target < 0: no log-prob term (g_lp must be 0).
/// A logit of -inf has p = 0 and gets gradient 0.
struct RowGrad {
  int64_t target = -1;
  float logsumexp = 0;
  float entropy = 0;
  float g_lp = 0;
  float g_ent = 0;
};

/// One build of the kernels.
struct LogprobKernels {
  /// The row's log-sum-exp, and its entropy when asked: a max pass, then one pass for
  /// sum_j e_j and sum_j e_j (x_j - max), e_j = exp(x_j - max).
  RowStats (*stats_f32)(const float* x, int64_t v, bool with_entropy);
  RowStats (*stats_bf16)(const uint16_t* x, int64_t v, bool with_entropy);
  void (*backward_f32)(const float* x, int64_t v, const RowGrad& g, float* dx);
  void (*backward_bf16)(const uint16_t* x, int64_t v, const RowGrad& g, uint16_t* dx);
};

const LogprobKernels& logprob_kernels(Isa isa);

}  // namespace troupe::kernels::cpu
