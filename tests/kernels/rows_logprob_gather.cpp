// Consistency rows of gather_logprobs / gather_logprobs_and_entropy: the log-probs, the
// entropy and the gradient to the logits (from a random upstream gradient) against
// log_softmax + gather + autograd, over vocabularies with and without a 16-lane tail,
// several leading shapes, ignored positions and non-contiguous logits.
#include <torch/torch.h>

#include <optional>
#include <string>

#include <troupe/kernels/logprob_gather.hpp>

#include "consistency_table.hpp"

namespace {

using troupe::test::ConsistencyOutputs;
using troupe::test::ConsistencyRow;

enum class Layout {
  Contiguous,
  LeadingSlice,  ///< logits[:, :-1] of (B, T + 1, V): leading dims not collapsible
  Transposed,    ///< a (V, N) matrix transposed: stride 1 along N, not V
};

struct Case {
  std::vector<int64_t> leading;  // the shape of targets
  int64_t vocab;
  torch::ScalarType dtype;
  bool entropy = false;
  std::optional<int64_t> ignore_index = std::nullopt;
  Layout layout = Layout::Contiguous;
};

std::string describe(const Case& c) {
  std::string s = "leading=(";
  for (size_t i = 0; i < c.leading.size(); ++i) s += (i ? "," : "") + std::to_string(c.leading[i]);
  s += ") V=" + std::to_string(c.vocab);
  if (c.entropy) s += " entropy";
  if (c.ignore_index) s += " ignore=" + std::to_string(*c.ignore_index);
  if (c.layout == Layout::LeadingSlice) s += " logits[:, :-1]";
  if (c.layout == Layout::Transposed) s += " transposed";
  return s;
}

/// Fresh leaf logits of the case's shape and layout, the same values on every call.
torch::Tensor make_logits(const Case& c, uint64_t seed) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto shape = c.leading;
  shape.push_back(c.vocab);
  torch::Tensor logits;
  if (c.layout == Layout::LeadingSlice) {
    auto wide = shape;
    wide[1] += 1;  // (B, T + 1, V)
    logits = (torch::randn(wide, g) * 4).to(c.dtype).narrow(1, 0, shape[1]);
  } else if (c.layout == Layout::Transposed) {
    logits = (torch::randn({c.vocab, shape[0]}, g) * 4).to(c.dtype).t();  // (N, V), stride (1, N)
  } else {
    logits = (torch::randn(shape, g) * 4).to(c.dtype);
  }
  // Make it a leaf of this layout (detach keeps the strides).
  return logits.detach().requires_grad_();
}

ConsistencyOutputs run_case(const Case& c) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(7);
  auto targets = torch::randint(0, c.vocab, c.leading, g, torch::kLong);
  if (c.ignore_index && targets.numel() > 0) {
    // Every third position ignored, and the first.
    auto flat = targets.view({-1});
    flat.index_put_({torch::indexing::Slice(0, torch::indexing::None, 3)}, *c.ignore_index);
  }
  auto up_lp = torch::randn(c.leading, g);
  auto up_ent = torch::randn(c.leading, g);

  auto run = [&](bool kernel) {
    auto logits = make_logits(c, 11);
    std::vector<torch::Tensor> outputs;
    torch::Tensor loss;
    if (c.entropy) {
      auto [lp, ent] = kernel ? troupe::kernels::gather_logprobs_and_entropy(logits, targets)
                              : troupe::kernels::reference::gather_logprobs_and_entropy(logits, targets);
      outputs = {lp.detach(), ent.detach()};
      loss = (lp * up_lp).sum() + (ent * up_ent).sum();
    } else {
      auto lp = kernel ? troupe::kernels::gather_logprobs(logits, targets, c.ignore_index)
                       : troupe::kernels::reference::gather_logprobs(logits, targets, c.ignore_index);
      outputs = {lp.detach()};
      loss = (lp * up_lp).sum();
    }
    loss.backward();
    TORCH_CHECK(logits.grad().scalar_type() == c.dtype, "gradient in ", logits.grad().scalar_type());
    outputs.push_back(logits.grad());
    return outputs;
  };
  return {run(true), run(false)};
}

void add(std::vector<ConsistencyRow>& rows, const Case& c) {
  const bool bf16 = c.dtype == torch::kBFloat16;
  // bf16 gradients: the fp32 values agree to ~1e-7 and a few round to the other bf16.
  // The entropy: the reference's own fp32 -(p * log p).sum() is ~1e-5 off a double one
  // at V = 50k (the kernel ~3e-8), an nmse of up to ~4e-11.
  const double fp32_max = c.entropy ? 4e-10 : 1e-10;
  rows.push_back({c.entropy ? "gather_logprobs_and_entropy" : "gather_logprobs", describe(c), bf16 ? "bf16" : "fp32",
                  "cpu", bf16 ? 1e-5 : fp32_max, [c] { return run_case(c); }});
}

}  // namespace

TROUPE_CONSISTENCY_ROWS(rows) {
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (const bool entropy : {false, true}) {
      add(rows, {{1}, 50, dtype, entropy});
      add(rows, {{3}, 50, dtype, entropy});
      add(rows, {{0}, 50, dtype, entropy});
      add(rows, {{3}, 1000, dtype, entropy});
      add(rows, {{5}, 1003, dtype, entropy});
      add(rows, {{2, 3}, 50272, dtype, entropy});
      add(rows, {{1}, 50257, dtype, entropy});
      add(rows, {{2, 4}, 1000, dtype, entropy, std::nullopt, Layout::LeadingSlice});
      add(rows, {{6}, 1000, dtype, entropy, std::nullopt, Layout::Transposed});
    }
    add(rows, {{3}, 50, dtype, false, -100});
    add(rows, {{7}, 1000, dtype, false, -100});
    add(rows, {{2, 3}, 50272, dtype, false, -100});
    add(rows, {{2, 4}, 1003, dtype, false, -100, Layout::LeadingSlice});
    add(rows, {{4}, 7, dtype, false, 3});  // an ignore index inside the vocabulary
  }
}
