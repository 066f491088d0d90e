#pragma once
/// Packed batches (--packing): a micro-batch's samples laid end to end in as few rows as
/// fit, instead of one padded row each. The model keeps every sample to itself through
/// the packed attention mask (causal_lm.hpp reads it): sample k of a row is k on its
/// tokens and -k on padding that belongs to it; 0 fills the row after its last sample.
/// Positions restart at each sample. The loss of a packed batch is the loss of the same
/// samples unpacked: the same targets, the same values.
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include <troupe/data/collate.hpp>

namespace troupe::data {

struct PackedRows {
  at::Tensor input_ids;       // (R, L) int64
  at::Tensor attention_mask;  // (R, L) int64: k / -k / 0 as above
  /// Where column w of sample n sits in the flattened (R * L) packed rows; -1 past the
  /// sample's span. unpack() reads through it.
  at::Tensor unpack_index;  // (N, W) int64
  /// The first packed column of each sample (its first token predicts nothing).
  std::vector<int64_t> sample_starts;  // N flat indices into (R * L)
};

/// Packs the first spans[n] columns of each row n of (N, W) `input_ids` and
/// `attention_mask` (right padded, 1 = token) into rows of at most `capacity` columns,
/// the longest spans first, each into the first row it fits (first-fit decreasing). A
/// span may cover padding: it stays padding of that sample (-k). Rows are as long as the
/// fullest one.
PackedRows pack_rows(const at::Tensor& input_ids, const at::Tensor& attention_mask, const std::vector<int64_t>& spans,
                     int64_t capacity, int64_t pad_id);

/// The per-token output of packed rows (R, L, ...) back in the unpacked layout (N, W, ...),
/// zero past each sample's span. Differentiable.
at::Tensor unpack(const at::Tensor& packed, const PackedRows& rows);

/// Step 1 packed: the samples of make_step1_batch in packed rows, with labels that never
/// ask a sample's last token to predict the next sample's first.
struct PackedLmBatch {
  PackedRows rows;
  at::Tensor labels;  // (R, L) int64, -100 on padding and on each sample's first token
  int64_t tokens = 0;  // real tokens
};
PackedLmBatch pack_step1_batch(const LmBatch& batch, int64_t capacity, int64_t pad_id);

/// Step 2 packed: each pair's chosen and rejected rows as two samples spanning the longer
/// of the two (reward_model_loss reads the values up to there, padding included).
PackedRows pack_step2_batch(const PairBatch& batch, int64_t capacity, int64_t pad_id);

}  // namespace troupe::data
