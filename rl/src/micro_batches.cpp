#include <troupe/rl/micro_batches.hpp>

#include <algorithm>
#include <numeric>
#include <string>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::rl {
namespace {

/// Where a row's real tokens are: columns [begin, end) of the (B, T) attention mask.
struct RowSpan {
  int64_t begin = 0, end = 0, length = 0;
};

std::vector<RowSpan> row_spans(const Experience& exp) {
  if (!exp.attention_mask.defined()) throw Error("micro-batches: the experience has no attention_mask");
  const auto real = exp.attention_mask.ne(0).to(torch::kCPU);  // (B, T) bool
  const int64_t B = real.size(0), T = real.size(1);
  const auto rows = real.accessor<bool, 2>();
  std::vector<RowSpan> spans(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    auto& span = spans[static_cast<size_t>(b)];
    span.begin = T;
    for (int64_t t = 0; t < T; ++t)
      if (rows[b][t]) {
        span.begin = std::min(span.begin, t);
        span.end = t + 1;
        ++span.length;
      }
    if (span.length == 0) span.begin = span.end = exp.prompt_length();  // keeps the minimal window
  }
  return spans;
}

/// The columns [begin, end) a batch of rows needs: its real tokens, with at least the
/// last prompt column (start() scores the first answer token from it) and one answer column.
struct Window {
  int64_t begin, end;
  int64_t width() const { return end - begin; }
};

Window window_of(int64_t begin, int64_t end, int64_t P) { return {std::min(begin, P - 1), std::max(end, P + 1)}; }

Window trim_window(const Experience& exp) {
  const int64_t T = exp.sequence_length();
  int64_t begin = T, end = 0;
  for (const auto& span : row_spans(exp)) {
    begin = std::min(begin, span.begin);
    end = std::max(end, span.end);
  }
  return window_of(begin, end, exp.prompt_length());
}

}  // namespace

Experience trim_padding(const Experience& exp) {
  exp.validate();
  const auto window = trim_window(exp);
  const int64_t P = exp.prompt_length(), T = exp.sequence_length();
  if (window.begin == 0 && window.end == T) return exp;
  Experience out = exp;
  // Columns by layout: sequences [begin, end), tokens [begin, end - 1), prompts [begin, P),
  // answers [0, end - P).
  out.for_each([&](const std::string&, Layout layout, torch::Tensor& t) {
    if (!t.defined()) return;
    switch (layout) {
      case Layout::Sample: break;
      case Layout::Prompt: t = t.narrow(1, window.begin, P - window.begin); break;
      case Layout::Sequence: t = t.narrow(1, window.begin, window.width()); break;
      case Layout::Token: t = t.narrow(1, window.begin, window.width() - 1); break;
      case Layout::Answer: t = t.narrow(1, 0, window.end - P); break;
    }
    t = t.contiguous();  // a model pass may view() its inputs
  });
  out.validate();
  return out;
}

std::vector<Experience> token_budget_micro_batches(const Experience& minibatch, int64_t max_tokens) {
  if (max_tokens < 0)
    throw Error("token_budget_micro_batches: max_tokens must be >= 0 (0 = the minibatch whole), got " +
                std::to_string(max_tokens));
  if (max_tokens == 0) return {minibatch};
  minibatch.validate();
  const auto totals = minibatch.totals();
  const auto spans = row_spans(minibatch);
  const int64_t P = minibatch.prompt_length();
  std::vector<int64_t> order(spans.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return spans[static_cast<size_t>(a)].length < spans[static_cast<size_t>(b)].length;
  });

  // Greedy: a row joins the current micro-batch while rows x trimmed width stays within
  // the budget; otherwise it starts the next one.
  std::vector<std::vector<int64_t>> groups;
  int64_t begin = 0, end = 0;
  for (const int64_t row : order) {
    const auto& span = spans[static_cast<size_t>(row)];
    if (!groups.empty()) {
      const auto joined = window_of(std::min(begin, span.begin), std::max(end, span.end), P);
      const auto rows = static_cast<int64_t>(groups.back().size()) + 1;
      if (rows * joined.width() <= max_tokens) {
        groups.back().push_back(row);
        begin = std::min(begin, span.begin);
        end = std::max(end, span.end);
        continue;
      }
    }
    groups.push_back({row});
    begin = span.begin;
    end = span.end;
  }

  std::vector<Experience> micro_batches;
  for (auto& rows : groups) {
    std::sort(rows.begin(), rows.end());  // minibatch order within a micro-batch
    auto micro = trim_padding(minibatch.index_select(torch::tensor(rows, torch::kLong)));
    micro.minibatch_totals = totals;
    micro_batches.push_back(std::move(micro));
  }
  return micro_batches;
}

}  // namespace troupe::rl
