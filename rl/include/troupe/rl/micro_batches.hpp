#pragma once
/// Token-budget micro-batches of a minibatch (OpenRLHF's and veRL's dynamic batch size):
/// its rows grouped by length so that each forward and backward holds at most a budget of
/// padded tokens, every micro-batch carrying the minibatch's counts for the losses.
#include <cstdint>
#include <vector>

#include <troupe/rl/experience.hpp>

namespace troupe::rl {

/// `exp` without the columns that are padding in every row: the prompt columns before the
/// earliest first real token and the columns after the latest last real one (by the
/// attention mask; at least one prompt and one answer column stay). The model's
/// positions count real tokens, so it scores the trimmed rows as it scores them padded.
/// minibatch_totals is kept.
Experience trim_padding(const Experience& exp);

/// The rows of `minibatch` in micro-batches of at most `max_tokens` padded tokens each
/// (rows x the width trim_padding() leaves them). The rows are sorted by real length (tokens on
/// the attention mask) and filled greedily in that order; a row that alone has more than
/// `max_tokens` tokens is a micro-batch of its own. Each micro-batch keeps its rows in
/// minibatch order, is trimmed (trim_padding), and carries the minibatch's totals() in
/// minibatch_totals, so that losses reducing with loss_reduction.hpp give its share of
/// the minibatch's loss. `max_tokens` 0: the minibatch itself, whole.
std::vector<Experience> token_budget_micro_batches(const Experience& minibatch, int64_t max_tokens);

}  // namespace troupe::rl
