#include <troupe/data/packed_batch.hpp>

#include <algorithm>
#include <numeric>
#include <string>

#include <troupe/common/error.hpp>

namespace troupe::data {
namespace {

/// Real tokens of each right-padded row of a (N, W) mask.
std::vector<int64_t> row_lengths(const at::Tensor& attention_mask) {
  auto lengths = (attention_mask > 0).sum(1).to(at::kLong).contiguous();  // (N)
  return {lengths.data_ptr<int64_t>(), lengths.data_ptr<int64_t>() + lengths.numel()};
}

}  // namespace

PackedRows pack_rows(const at::Tensor& input_ids, const at::Tensor& attention_mask, const std::vector<int64_t>& spans,
                     int64_t capacity, int64_t pad_id) {
  TORCH_CHECK(input_ids.dim() == 2 && attention_mask.sizes() == input_ids.sizes(),
              "pack_rows: input_ids and attention_mask must be (N, W) alike, got ", input_ids.sizes(), " and ",
              attention_mask.sizes());
  const int64_t n = input_ids.size(0), width = input_ids.size(1);
  TORCH_CHECK(static_cast<int64_t>(spans.size()) == n, "pack_rows: ", spans.size(), " spans for ", n, " rows");
  if (capacity < 1) throw Error("packing: the row capacity (--max_seq_len) must be at least 1");
  for (int64_t i = 0; i < n; ++i)
    TORCH_CHECK(spans[i] >= 1 && spans[i] <= std::min(width, capacity), "pack_rows: span ", spans[i], " of row ", i,
                " is outside [1, ", std::min(width, capacity), "]");

  // First-fit decreasing, ties in sample order: the same batch always packs the same way.
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return spans[a] > spans[b]; });
  std::vector<int64_t> fill;                             // columns used per packed row
  std::vector<int64_t> row_of(n), offset_of(n), segment_of(n);
  std::vector<int64_t> samples_in_row;
  for (const int64_t i : order) {
    size_t r = 0;
    while (r < fill.size() && fill[r] + spans[i] > capacity) ++r;
    if (r == fill.size()) {
      fill.push_back(0);
      samples_in_row.push_back(0);
    }
    row_of[i] = static_cast<int64_t>(r);
    offset_of[i] = fill[r];
    segment_of[i] = ++samples_in_row[r];
    fill[r] += spans[i];
  }
  const int64_t rows = static_cast<int64_t>(fill.size());
  const int64_t length = *std::max_element(fill.begin(), fill.end());

  PackedRows out;
  out.input_ids = at::full({rows, length}, pad_id, at::kLong);   // (R, L)
  out.attention_mask = at::zeros({rows, length}, at::kLong);     // (R, L)
  out.unpack_index = at::full({n, width}, -1, at::kLong);        // (N, W)
  out.sample_starts.resize(static_cast<size_t>(n));
  const auto ids = input_ids.to(at::kLong).contiguous();
  const auto mask = attention_mask.to(at::kLong).contiguous();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = row_of[i], o = offset_of[i], span = spans[i], k = segment_of[i];
    out.input_ids[r].narrow(0, o, span).copy_(ids[i].narrow(0, 0, span));
    out.attention_mask[r].narrow(0, o, span).copy_(at::where(mask[i].narrow(0, 0, span) > 0, k, -k));
    out.unpack_index[i].narrow(0, 0, span).copy_(at::arange(r * length + o, r * length + o + span, at::kLong));
    out.sample_starts[static_cast<size_t>(i)] = r * length + o;
  }
  return out;
}

at::Tensor unpack(const at::Tensor& packed, const PackedRows& rows) {
  const int64_t n = rows.unpack_index.size(0), width = rows.unpack_index.size(1);
  TORCH_CHECK(packed.dim() >= 2 && packed.size(0) * packed.size(1) == rows.attention_mask.numel(),
              "unpack: packed output ", packed.sizes(), " does not match packed rows ", rows.attention_mask.sizes());
  auto index = rows.unpack_index.to(packed.device());
  auto flat = packed.flatten(0, 1);                                   // (R * L, ...)
  auto gathered = flat.index_select(0, index.clamp_min(0).flatten());  // (N * W, ...)
  std::vector<int64_t> shape{n, width};
  for (int64_t d = 2; d < packed.dim(); ++d) shape.push_back(packed.size(d));
  auto present = (index >= 0);  // (N, W)
  for (int64_t d = 2; d < packed.dim(); ++d) present = present.unsqueeze(-1);
  return gathered.view(shape).masked_fill(present.logical_not(), 0);  // (N, W, ...)
}

PackedLmBatch pack_step1_batch(const LmBatch& batch, int64_t capacity, int64_t pad_id) {
  auto lengths = row_lengths(batch.attention_mask);
  for (auto& length : lengths) length = std::max<int64_t>(length, 1);  // an empty sample keeps one pad column
  PackedLmBatch out;
  out.rows = pack_rows(batch.input_ids, batch.attention_mask, lengths, capacity, pad_id);
  // Labels: the ids on tokens, -100 on padding and on each sample's first token, which
  // unpacked is column 0 and never a target.
  out.labels = at::where(out.rows.attention_mask > 0, out.rows.input_ids, at::full({}, kIgnoreIndex, at::kLong));
  auto flat = out.labels.view({-1});
  for (const int64_t start : out.rows.sample_starts) flat[start] = kIgnoreIndex;
  out.tokens = (out.rows.attention_mask > 0).sum().item<int64_t>();
  return out;
}

PackedRows pack_step2_batch(const PairBatch& batch, int64_t capacity, int64_t pad_id) {
  const auto lengths = row_lengths(batch.attention_mask);
  const auto pairs = static_cast<size_t>(batch.pairs);
  TORCH_CHECK(lengths.size() == 2 * pairs, "pack_step2_batch: ", lengths.size(), " rows for ", pairs, " pairs");
  std::vector<int64_t> spans(lengths.size());
  for (size_t i = 0; i < pairs; ++i) {
    // reward_model_loss compares the pair's values up to the longer one's end.
    const int64_t span = std::max<int64_t>(std::max(lengths[i], lengths[pairs + i]), 1);
    spans[i] = spans[pairs + i] = span;
  }
  return pack_rows(batch.input_ids, batch.attention_mask, spans, capacity, pad_id);
}

}  // namespace troupe::data
