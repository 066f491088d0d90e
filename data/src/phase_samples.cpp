/// Phase selection: 9:1 eval split, --data_split chunks, blending, SFT-only datasets.
#include <troupe/data/phase_samples.hpp>

#include <troupe/common/error.hpp>
#include <troupe/data/split.hpp>

namespace troupe::data {
namespace {

std::vector<Sample> pick(const std::vector<Sample>& from, const std::vector<int64_t>& indices) {
  std::vector<Sample> out;
  out.reserve(indices.size());
  for (int64_t i : indices) out.push_back(from[static_cast<size_t>(i)]);
  return out;
}

std::string join(const std::vector<int64_t>& b) {
  std::string s;
  for (size_t i = 1; i < b.size(); ++i) s += (i > 1 ? "," : "") + std::to_string(b[i] - b[i - 1]);
  return s;
}

std::string split_text(const std::vector<double>& w) {
  std::string s;
  for (size_t i = 0; i < w.size(); ++i) {
    auto t = std::to_string(w[i]);
    t.erase(t.find_last_not_of('0') + 1);
    if (!t.empty() && t.back() == '.') t.pop_back();
    s += (i ? "," : "") + t;
  }
  return s;
}

/// Chunk `chunk` of `samples`; empty chunks are reported by the caller.
std::vector<Sample> chunk_of(const std::vector<Sample>& samples, const std::vector<double>& weights, uint32_t seed,
                             int chunk, const std::string& what) {
  const auto n = static_cast<int64_t>(samples.size());
  const auto b = split_boundaries(n, weights);
  for (size_t i = 1; i < b.size(); ++i)
    if (b[i] < b[i - 1])
      throw Error(what + ": split " + split_text(weights) + " of " + std::to_string(n) +
                  " samples gives a negative chunk (too few samples for these weights)");
  return pick(samples, chunk_indices(seed, n, weights, chunk));
}

/// Concatenation then one seeded shuffle (item i = concat[perm[i]]).
std::vector<Sample> blend(const std::vector<std::vector<Sample>>& parts, uint32_t seed) {
  std::vector<Sample> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return pick(all, shuffled_indices(seed, static_cast<int64_t>(all.size())));
}

}  // namespace

std::pair<std::vector<Sample>, std::vector<Sample>> train_eval_samples(const RawDataset& dataset, uint32_t seed) {
  if (dataset.eval) return {dataset.train, *dataset.eval};
  const std::vector<double> nine_one{9, 1};
  const auto what = dataset.spec.text() + " (9:1 train/eval split, no eval file)";
  return {chunk_of(dataset.train, nine_one, seed, 0, what), chunk_of(dataset.train, nine_one, seed, 1, what)};
}

PhaseSamples select_phase(const std::vector<RawDataset>& datasets, const std::vector<RawDataset>& sft_only,
                          const SplitOptions& split, int phase) {
  if (phase < 1 || phase > 3) throw Error("phase " + std::to_string(phase) + ": expected 1, 2 or 3");
  if (datasets.empty() && (phase != 1 || sft_only.empty())) throw Error("no dataset given (--data_path)");
  PhaseSamples out;
  out.phase = phase;
  std::vector<std::vector<Sample>> train_parts, eval_parts;
  auto add = [&](const RawDataset& ds, const std::vector<double>& weights, int chunk, bool sft) {
    auto [train, eval] = train_eval_samples(ds, split.seed);
    DatasetPhaseReport r;
    r.dataset = ds.spec.text();
    r.sft_only = sft;
    r.eval_split_from_train = !ds.eval.has_value();
    r.train_total = static_cast<int64_t>(train.size());
    r.eval_total = static_cast<int64_t>(eval.size());
    r.read = ds.report;
    const auto what = r.dataset + (sft ? " (--sft_only_data_path)" : "");
    train_parts.push_back(chunk_of(train, weights, split.seed, chunk, what + " train"));
    eval_parts.push_back(chunk_of(eval, weights, split.seed, chunk, what + " eval"));
    r.train = static_cast<int64_t>(train_parts.back().size());
    r.eval = static_cast<int64_t>(eval_parts.back().size());
    // Step 1 may take all its samples from --sft_only_data_path (as DeepSpeed-Chat allows).
    const bool sft_only_fills = phase == 1 && !sft && !sft_only.empty();
    if (r.train == 0 && !sft_only_fills)
      throw Error(what + " train: --data_split " + split_text(weights) + " leaves phase " + std::to_string(phase) +
                  " with no train samples (" + std::to_string(train.size()) + " train samples give chunks " +
                  join(split_boundaries(static_cast<int64_t>(train.size()), weights)) + ")");
    out.reports.push_back(std::move(r));
  };
  for (const auto& ds : datasets) add(ds, split.data_split, phase - 1, false);
  // DeepSpeed-Chat blends only when there are several datasets; one is already permuted.
  if (train_parts.size() > 1) {
    out.train = blend(train_parts, split.seed);
    out.eval = blend(eval_parts, split.seed);
  } else if (!train_parts.empty()) {
    out.train = std::move(train_parts.front());
    out.eval = std::move(eval_parts.front());
  }
  if (phase == 1 && !sft_only.empty()) {
    train_parts.assign(1, std::move(out.train));
    eval_parts.assign(1, std::move(out.eval));
    for (const auto& ds : sft_only) add(ds, {10, 0, 0}, 0, true);
    out.train = blend(train_parts, split.seed);
    out.eval = blend(eval_parts, split.seed);
  }
  return out;
}

}  // namespace troupe::data
