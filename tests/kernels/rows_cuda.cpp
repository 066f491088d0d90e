// The consistency table's CUDA rows: every op's public launcher on CUDA tensors
// against its LibTorch reference on the same tensors (bf16 kernels against the
// reference on the same bf16 values upcast to fp32, so the bound is the kernel's own
// rounding). The walker runs these only where a GPU is; the file builds everywhere.
#include <ATen/Context.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include <troupe/kernels/decode_attention.hpp>
#include <troupe/kernels/decode_linear.hpp>
#include <troupe/kernels/fused_adamw.hpp>
#include <troupe/kernels/logprob_gather.hpp>
#include <troupe/kernels/sampling.hpp>

#include "consistency_table.hpp"

namespace troupe::test {
namespace {

using kernels::Activation;

torch::TensorOptions cuda_f32() { return torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA); }

const char* dtype_name(torch::ScalarType t) { return t == torch::kBFloat16 ? "bf16" : "fp32"; }

const char* act_name(Activation a) {
  switch (a) {
    case Activation::None: return "none";
    case Activation::Relu: return "relu";
    case Activation::Gelu: return "gelu";
    case Activation::GeluTanh: return "gelu_tanh";
    case Activation::Silu: return "silu";
  }
  return "?";
}

/// A CUDA generator seeded afresh: two of these with one seed draw the same numbers.
at::Generator cuda_generator(uint64_t seed) {
  auto g = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, 0)).clone();
  g.set_current_seed(seed);
  return g;
}

// --- decode_linear ------------------------------------------------------------

/// x of `lead` rows shape (..., K); M = 0 is the empty batch.
ConsistencyRow linear_row(std::vector<int64_t> lead, int64_t n, int64_t k, Activation act, torch::ScalarType dtype,
                          bool bias, torch::ScalarType x_dtype, uint64_t seed) {
  std::string shape = "x=(";
  for (size_t i = 0; i < lead.size(); ++i) shape += std::to_string(lead[i]) + ",";
  shape += std::to_string(k) + ") N=" + std::to_string(n) + " " + act_name(act) + (bias ? " bias" : "") +
           (x_dtype == torch::kBFloat16 ? " x bf16" : "");
  ConsistencyRow row{"decode_linear", shape, dtype_name(dtype), "cuda", dtype == torch::kBFloat16 ? 1e-5 : 1e-10, {}};
  row.run = [=] {
    torch::manual_seed(seed);
    auto w = torch::randn({n, k}, cuda_f32()) / std::sqrt(static_cast<double>(k));
    auto b = bias ? torch::randn({n}, cuda_f32()) : torch::Tensor();
    auto sizes = lead;
    sizes.push_back(k);
    auto x = torch::randn(sizes, cuda_f32()).to(x_dtype);
    const auto packed = kernels::pack_linear(w, b, dtype);
    auto out = kernels::decode_linear(x, packed, act);
    auto ref = kernels::reference::decode_linear(x, w, b, act, dtype);
    return ConsistencyOutputs{{out}, {ref}};
  };
  return row;
}

ConsistencyRow gated_row(int64_t m, int64_t n, int64_t k, torch::ScalarType dtype, uint64_t seed) {
  const std::string shape = "M=" + std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k);
  ConsistencyRow row{"decode_gated_linear", shape, dtype_name(dtype), "cuda", dtype == torch::kBFloat16 ? 1e-5 : 1e-10,
                     {}};
  row.run = [=] {
    torch::manual_seed(seed);
    auto g = torch::randn({n, k}, cuda_f32()) / std::sqrt(static_cast<double>(k));
    auto u = torch::randn({n, k}, cuda_f32()) / std::sqrt(static_cast<double>(k));
    auto x = torch::randn({m, k}, cuda_f32());
    auto out = kernels::decode_gated_linear(x, kernels::pack_linear(g, {}, dtype), kernels::pack_linear(u, {}, dtype));
    auto ref = kernels::reference::decode_gated_linear(x, g, u, dtype);
    return ConsistencyOutputs{{out}, {ref}};
  };
  return row;
}

// --- decode_attention -----------------------------------------------------------

enum class MaskKind { None, LeftPadding, AllPaddingRow, Bool };

/// q (B, H, D) over a cache of C >= length positions; `permuted` stores the cache as
/// (B, C, H_kv, D) and hands the kernel its (B, H_kv, C, D) view.
ConsistencyRow attention_row(int64_t b, int64_t h, int64_t h_kv, int64_t d, int64_t c, int64_t length, MaskKind mask,
                             torch::ScalarType dtype, bool permuted, uint64_t seed) {
  std::string shape = "B=" + std::to_string(b) + " H=" + std::to_string(h) + " H_kv=" + std::to_string(h_kv) +
                      " D=" + std::to_string(d) + " C=" + std::to_string(c) + " len=" + std::to_string(length);
  shape += mask == MaskKind::None            ? " no mask"
           : mask == MaskKind::LeftPadding   ? " left padding"
           : mask == MaskKind::AllPaddingRow ? " an all-padding row"
                                             : " bool mask";
  if (permuted) shape += " (B,C,H_kv,D) storage";
  ConsistencyRow row{"decode_attention", shape, dtype_name(dtype), "cuda", dtype == torch::kBFloat16 ? 1e-5 : 1e-10,
                     {}};
  row.run = [=] {
    torch::manual_seed(seed);
    auto q = torch::randn({b, h, d}, cuda_f32()).to(dtype);
    torch::Tensor k, v;
    if (permuted) {
      k = torch::randn({b, c, h_kv, d}, cuda_f32()).to(dtype).permute({0, 2, 1, 3});
      v = torch::randn({b, c, h_kv, d}, cuda_f32()).to(dtype).permute({0, 2, 1, 3});
    } else {
      k = torch::randn({b, h_kv, c, d}, cuda_f32()).to(dtype);
      v = torch::randn({b, h_kv, c, d}, cuda_f32()).to(dtype);
    }
    torch::Tensor key_mask;
    if (mask != MaskKind::None) {
      // Row r has r * 3 left-padding positions (and the all-padding row none real
      // but the newest); L' = length + 2 as a mask of a longer batch would be.
      key_mask = torch::ones({b, length + 2}, torch::TensorOptions().dtype(torch::kInt64).device(torch::kCUDA));
      for (int64_t r = 0; r < b; ++r) key_mask[r].narrow(0, 0, std::min(length, r * 3)).zero_();
      if (mask == MaskKind::AllPaddingRow) key_mask[b - 1].zero_();
      if (mask == MaskKind::Bool) key_mask = key_mask.to(torch::kBool);
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    auto out = kernels::decode_attention(q, k, v, length, key_mask, scale);
    auto ref = kernels::reference::decode_attention(q.to(torch::kFloat32), k.to(torch::kFloat32),
                                                    v.to(torch::kFloat32), length, key_mask, scale);
    return ConsistencyOutputs{{out}, {ref}};
  };
  return row;
}

// --- sampling ---------------------------------------------------------------------

/// Tokens must be equal: max_nmse 0. Row 0 has its maximum twice (ties go to the
/// smaller index, as torch.argmax).
ConsistencyRow sampling_row(int64_t b, int64_t vocab, kernels::SamplingParams params, torch::ScalarType dtype,
                            const std::string& what, uint64_t seed) {
  ConsistencyRow row{"sample_next_tokens", "B=" + std::to_string(b) + " V=" + std::to_string(vocab) + " " + what,
                     dtype_name(dtype), "cuda", 0.0, {}};
  row.run = [=] {
    torch::manual_seed(seed);
    auto logits = (torch::randn({b, vocab}, cuda_f32()) * 3).to(dtype);
    if (b > 0 && vocab > 10) {
      logits[0][7] = 20;
      logits[0][vocab - 3] = 20;
    }
    auto g1 = cuda_generator(seed), g2 = cuda_generator(seed);
    auto out = kernels::sample_next_tokens(logits, params, g1);
    auto ref = kernels::reference::sample_next_tokens(logits, params, g2);
    return ConsistencyOutputs{{out}, {ref}};
  };
  return row;
}

kernels::SamplingParams sampled(double temperature, int64_t top_k, double top_p) {
  kernels::SamplingParams p;
  p.do_sample = true;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  return p;
}

// --- logprob gather -----------------------------------------------------------------

/// logits (lead..., V); the outputs and their gradients to logits. Some targets are
/// ignore_index when `ignore` (no entropy then: the public API pairs them so).
ConsistencyRow logprob_row(std::vector<int64_t> lead, int64_t vocab, torch::ScalarType dtype, bool entropy, bool ignore,
                           bool strided, uint64_t seed) {
  std::string shape = "logits=(";
  for (auto s : lead) shape += std::to_string(s) + ",";
  shape += std::to_string(vocab) + ")" + (entropy ? " +entropy" : "") + (ignore ? " ignore_index" : "") +
           (strided ? " strided rows" : "");
  ConsistencyRow row{"gather_logprobs", shape, dtype_name(dtype), "cuda", dtype == torch::kBFloat16 ? 1e-5 : 1e-10,
                     {}};
  row.run = [=] {
    torch::manual_seed(seed);
    auto sizes = lead;
    sizes.push_back(strided ? vocab + 5 : vocab);
    auto base = (torch::randn(sizes, cuda_f32()) * 2).to(dtype);
    auto targets = torch::randint(vocab, lead, torch::TensorOptions().dtype(torch::kInt64).device(torch::kCUDA));
    if (ignore && targets.numel() > 1) targets.view({-1}).narrow(0, 0, 2).fill_(-100);
    auto g_lp = torch::randn(lead, cuda_f32());
    auto g_ent = torch::randn(lead, cuda_f32());

    auto run = [&](bool kernel) {
      auto leaf = base.detach().clone().requires_grad_(true);
      auto logits = strided ? leaf.narrow(-1, 0, vocab) : leaf;
      std::vector<torch::Tensor> outs, grads;
      if (entropy) {
        auto [lp, ent] = kernel ? kernels::gather_logprobs_and_entropy(logits, targets)
                                : kernels::reference::gather_logprobs_and_entropy(logits, targets);
        torch::autograd::backward({lp, ent}, {g_lp, g_ent});
        outs = {lp.detach(), ent.detach()};
      } else {
        const std::optional<int64_t> ii = ignore ? std::optional<int64_t>(-100) : std::nullopt;
        auto lp = kernel ? kernels::gather_logprobs(logits, targets, ii)
                         : kernels::reference::gather_logprobs(logits, targets, ii);
        torch::autograd::backward({lp}, {g_lp});
        outs = {lp.detach()};
      }
      outs.push_back(leaf.grad());
      return outs;
    };
    return ConsistencyOutputs{run(true), run(false)};
  };
  return row;
}

// --- fused_adamw --------------------------------------------------------------------

/// Tensors of `numels` (0 = an undefined grad); `misaligned` views the params and
/// states at an offset of one float into a flat buffer (the element-wise path).
ConsistencyRow adamw_row(std::vector<int64_t> numels, bool copies, bool misaligned, double weight_decay,
                         const std::string& what, uint64_t seed) {
  ConsistencyRow row{"fused_adamw", what, "fp32", "cuda", 1e-10, {}};
  row.run = [=] {
    torch::manual_seed(seed);
    auto make = [&](int64_t n, double scale) {
      if (!misaligned) return torch::randn({n}, cuda_f32()) * scale;
      return (torch::randn({n + 1}, cuda_f32()) * scale).narrow(0, 1, n);
    };
    std::vector<torch::Tensor> p, g, m, v, c;
    std::vector<int64_t> steps;
    for (size_t i = 0; i < numels.size(); ++i) {
      const int64_t n = numels[i] > 0 ? numels[i] : 100;
      p.push_back(make(n, 1.0));
      g.push_back(numels[i] > 0 ? make(n, 0.1) : torch::Tensor());
      m.push_back(make(n, 0.01));
      v.push_back(make(n, 0.01).abs());
      if (copies) c.push_back(torch::zeros({n}, cuda_f32().dtype(torch::kBFloat16)));
      steps.push_back(1 + static_cast<int64_t>(i % 5) * 3);  // per tensor, as torch keeps it
    }
    kernels::AdamWHyper hyper;
    hyper.lr = 3e-3;
    hyper.weight_decay = weight_decay;
    auto clone_all = [](const std::vector<torch::Tensor>& ts) {
      std::vector<torch::Tensor> out;
      for (const auto& t : ts) out.push_back(t.defined() ? t.clone() : t);  // clone: contiguous again
      return out;
    };
    // The misaligned views stay views for the kernel: clone() would realign them.
    auto kp = misaligned ? p : clone_all(p), km = misaligned ? m : clone_all(m), kv = misaligned ? v : clone_all(v);
    auto kc = clone_all(c);
    auto rp = clone_all(p), rm = clone_all(m), rv = clone_all(v), rc = clone_all(c);
    kernels::fused_adamw(kp, g, km, kv, steps, hyper, kc);
    kernels::reference::fused_adamw(rp, g, rm, rv, steps, hyper, rc);
    ConsistencyOutputs out;
    auto add = [&](const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
      out.kernel.push_back(torch::cat(a));
      out.reference.push_back(torch::cat(b));
    };
    add(kp, rp);
    add(km, rm);
    add(kv, rv);
    if (copies) add(kc, rc);
    return out;
  };
  return row;
}

}  // namespace

TROUPE_CONSISTENCY_ROWS(rows) {
  uint64_t seed = 1000;
  // decode_linear: M = 1, 3, 32 (and 40: two row tiles), the empty batch; N not a
  // multiple of 16; K = 33 (element loads) and 96 (16-byte loads, not a multiple of 32).
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (int64_t m : {1, 3, 32, 40})
      for (int64_t k : {33, 96})
        rows.push_back(linear_row({m}, 50, k, Activation::None, dtype, true, torch::kFloat32, ++seed));
    for (auto act : {Activation::Relu, Activation::Gelu, Activation::GeluTanh, Activation::Silu})
      rows.push_back(linear_row({3}, 77, 96, act, dtype, true, torch::kFloat32, ++seed));
    rows.push_back(linear_row({0}, 50, 96, Activation::Gelu, dtype, true, torch::kFloat32, ++seed));
    rows.push_back(linear_row({2, 3}, 50, 64, Activation::Silu, dtype, false, torch::kFloat32, ++seed));
    rows.push_back(linear_row({5}, 50272, 64, Activation::None, dtype, false, torch::kFloat32, ++seed));
    rows.push_back(linear_row({8}, 300, 4096, Activation::GeluTanh, dtype, true, torch::kFloat32, ++seed));
    rows.push_back(linear_row({3}, 50, 96, Activation::Relu, dtype, true, torch::kBFloat16, ++seed));
    for (int64_t m : {1, 3, 32}) rows.push_back(gated_row(m, 50, 96, dtype, ++seed));
    rows.push_back(gated_row(3, 50, 33, dtype, ++seed));
  }

  // decode_attention: GQA 1, 4, 8; D = 64, 128, 33 (element loads); left padding, an
  // all-padding row, bool masks; long lengths (split over blocks and merged).
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    rows.push_back(attention_row(3, 8, 8, 64, 48, 37, MaskKind::LeftPadding, dtype, false, ++seed));
    rows.push_back(attention_row(3, 8, 2, 64, 48, 37, MaskKind::AllPaddingRow, dtype, false, ++seed));
    rows.push_back(attention_row(3, 16, 2, 128, 40, 40, MaskKind::LeftPadding, dtype, false, ++seed));
    rows.push_back(attention_row(2, 12, 4, 64, 20, 9, MaskKind::Bool, dtype, true, ++seed));
    rows.push_back(attention_row(2, 6, 6, 33, 20, 17, MaskKind::None, dtype, false, ++seed));
    rows.push_back(attention_row(1, 8, 1, 128, 3100, 3000, MaskKind::LeftPadding, dtype, false, ++seed));
    rows.push_back(attention_row(4, 32, 8, 128, 600, 517, MaskKind::AllPaddingRow, dtype, false, ++seed));
    rows.push_back(attention_row(0, 8, 2, 64, 16, 5, MaskKind::LeftPadding, dtype, false, ++seed));
    rows.push_back(attention_row(2, 4, 4, 256, 8, 1, MaskKind::LeftPadding, dtype, false, ++seed));
  }

  // sampling: greedy and the fused draw, V = 50272.
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    rows.push_back(sampling_row(4, 50272, kernels::SamplingParams{}, dtype, "greedy", ++seed));
    rows.push_back(sampling_row(4, 50272, sampled(1.0, 0, 1.0), dtype, "sampled", ++seed));
    rows.push_back(sampling_row(4, 50272, sampled(0.7, 50, 1.0), dtype, "T=0.7 top_k=50", ++seed));
    rows.push_back(sampling_row(4, 50272, sampled(1.3, 0, 0.9), dtype, "T=1.3 top_p=0.9", ++seed));
    rows.push_back(sampling_row(4, 50272, sampled(0.8, 40, 0.8), dtype, "T=0.8 top_k=40 top_p=0.8", ++seed));
    rows.push_back(sampling_row(3, 33, sampled(1.0, 1, 1.0), dtype, "top_k=1", ++seed));
  }
  rows.push_back(sampling_row(0, 50272, kernels::SamplingParams{}, torch::kFloat32, "greedy, empty batch", ++seed));

  // logprob gather: V = 50272 (16-byte rows), 50257 (rows off the 16-byte grid for
  // bf16), 33; entropy; ignore_index; strided rows; the empty batch.
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    rows.push_back(logprob_row({2, 5}, 50272, dtype, false, false, false, ++seed));
    rows.push_back(logprob_row({2, 5}, 50257, dtype, true, false, false, ++seed));
    rows.push_back(logprob_row({7}, 33, dtype, false, true, false, ++seed));
    rows.push_back(logprob_row({3, 4}, 1000, dtype, true, false, true, ++seed));
    rows.push_back(logprob_row({0}, 50272, dtype, false, false, false, ++seed));
  }

  // fused_adamw: tails, several chunks, more tensors than one launch takes (24), more
  // chunks than one launch takes (320 of 64K), undefined grads, misaligned views.
  rows.push_back(adamw_row({1, 7, 64, 65536 * 2 + 5, 0, 300}, true, false, 0.01, "mixed sizes, bf16 copies", ++seed));
  rows.push_back(adamw_row(std::vector<int64_t>(30, 1000), false, false, 0.0, "30 tensors, no decay", ++seed));
  rows.push_back(adamw_row({321 * 65536 + 3}, false, false, 0.1, "321 chunks in one tensor", ++seed));
  rows.push_back(adamw_row({5, 4097, 0, 33}, true, true, 0.01, "misaligned views", ++seed));
}

}  // namespace troupe::test
