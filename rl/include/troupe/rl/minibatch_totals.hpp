#pragma once
/// What a step-3 loss divides by, counted over the minibatch of one optimizer step.
#include <cstdint>

namespace troupe::rl {

/// The counts of a minibatch that its losses are normalised by. A minibatch split into
/// micro-batches (--max_tokens_per_microbatch, micro_batches.hpp) hands them to every
/// micro-batch, so that a loss dividing by them gives the micro-batch's share of the
/// minibatch's loss: the shares, and their gradients, add up to the minibatch's.
struct MinibatchTotals {
  int64_t rows = 0;           ///< answers, B
  int64_t action_tokens = 0;  ///< answer tokens on the action mask
  int64_t answer_width = 0;   ///< answer positions A = T - P, padding included (Dr. GRPO's default length)
};

}  // namespace troupe::rl
