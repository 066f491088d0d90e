#pragma once
/// The input embedding of a training pass whose LM head is tied to it.
#include <torch/types.h>

namespace troupe::models {

struct TiedLookup {
  torch::Tensor embeddings;   // (B, T, E)
  torch::Tensor head_weight;  // (V, E): the same values as the weight; the LM head must read this one
};

/// Looks `ids` (B, T) up in `weight` (V, E) and hands the weight back for the LM head,
/// both through one autograd node. The node's backward receives the head's dense (V, E)
/// gradient and adds the looked-up rows' gradients into it in place, so the weight gets
/// one (V, E) gradient. Through separate nodes autograd builds three: the head's, the
/// lookup's (zero-filled, then the rows added) and their sum (3 x 147 MiB at OPT-125m's
/// vocabulary, all alive at the backward's peak, and a fill and an add each step).
TiedLookup tied_embedding_lookup(const torch::Tensor& weight, const torch::Tensor& ids);

}  // namespace troupe::models
