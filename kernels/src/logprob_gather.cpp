// The log-prob gather launcher: checks, the autograd function, and the split of the
// rows over the intra-op threads (CPU) or the CUDA kernels' glue.
#include <troupe/kernels/logprob_gather.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <troupe/common/error.hpp>
#include "cpu/logprob_gather.hpp"
#include "kernel_isa.hpp"

#if defined(TROUPE_WITH_CUDA) && __has_include("cuda/logprob_gather_cuda.hpp")
#include "cuda/logprob_gather_cuda.hpp"
#define TROUPE_LOGPROB_GATHER_CUDA 1
#endif

namespace troupe::kernels {
namespace {

/// What one call asks for.
struct GatherSpec {
  bool has_ignore = false;
  int64_t ignore_index = 0;
  bool with_entropy = false;
  bool ignored(int64_t target) const { return has_ignore && target == ignore_index; }
};

/// The forward's results over the N rows, flat.
struct Forward {
  torch::Tensor logprobs;   // (N) fp32
  torch::Tensor logsumexp;  // (N) fp32
  torch::Tensor entropy;    // (N) fp32, or undefined
};

int64_t leading_rows(const torch::Tensor& logits) {
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < logits.dim(); ++d) rows *= logits.size(d);
  return rows;
}

std::vector<int64_t> leading_shape(const torch::Tensor& logits) {
  return logits.sizes().slice(0, logits.dim() - 1).vec();
}

/// Rows per task: about 16k logits each, so tiny vocabularies still share out.
int64_t grain(int64_t vocab) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(vocab, 1)); }

/// The element offset of each row's first logit, for logits (..., V) whose last dim has
/// stride 1 and whose leading dims have any strides (logits[:, :-1] is read in place).
std::vector<int64_t> row_offsets(const torch::Tensor& logits) {
  const int64_t dims = logits.dim() - 1;
  std::vector<int64_t> offsets(static_cast<size_t>(leading_rows(logits)));
  std::vector<int64_t> index(static_cast<size_t>(dims), 0);
  int64_t offset = 0;
  for (auto& row : offsets) {
    row = offset;
    for (int64_t d = dims - 1; d >= 0; --d) {  // an odometer over the leading dims
      offset += logits.stride(d);
      if (++index[static_cast<size_t>(d)] < logits.size(d)) break;
      offset -= logits.stride(d) * logits.size(d);
      index[static_cast<size_t>(d)] = 0;
    }
  }
  return offsets;
}

const cpu::LogprobKernels& cpu_kernels() { return cpu::logprob_kernels(kernel_isa()); }

float logit_at(const torch::Tensor& logits, int64_t offset) {
  if (logits.scalar_type() == torch::kBFloat16)
    return static_cast<float>(logits.const_data_ptr<c10::BFloat16>()[offset]);
  return logits.const_data_ptr<float>()[offset];
}

Forward forward_cpu(const torch::Tensor& logits, const torch::Tensor& targets, const GatherSpec& spec) {
  const int64_t rows = targets.numel(), vocab = logits.size(-1);
  auto options = torch::TensorOptions().dtype(torch::kFloat32);
  Forward out{torch::empty({rows}, options), torch::empty({rows}, options),
              spec.with_entropy ? torch::empty({rows}, options) : torch::Tensor()};
  const auto offsets = row_offsets(logits);
  const int64_t* target = targets.const_data_ptr<int64_t>();
  float* lp = out.logprobs.data_ptr<float>();
  float* lse = out.logsumexp.data_ptr<float>();
  float* entropy = spec.with_entropy ? out.entropy.data_ptr<float>() : nullptr;
  const bool bf16 = logits.scalar_type() == torch::kBFloat16;
  const auto& k = cpu_kernels();
  at::parallel_for(0, rows, grain(vocab), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const auto offset = offsets[static_cast<size_t>(r)];
      const bool ignored = spec.ignored(target[r]);
      if (ignored && !spec.with_entropy) {  // nothing of this row is needed
        lp[r] = lse[r] = 0.f;
        continue;
      }
      const auto stats =
          bf16 ? k.stats_bf16(reinterpret_cast<const uint16_t*>(logits.const_data_ptr<c10::BFloat16>()) + offset, vocab,
                              spec.with_entropy)
               : k.stats_f32(logits.const_data_ptr<float>() + offset, vocab, spec.with_entropy);
      lse[r] = stats.logsumexp;
      if (entropy) entropy[r] = stats.entropy;
      lp[r] = ignored ? 0.f : logit_at(logits, offset + target[r]) - stats.logsumexp;
    }
  });
  return out;
}

/// d logits (..., V) contiguous in logits' dtype, from the upstream gradients of the
/// log-probs and the entropy ((N) fp32 each, or undefined: zero).
torch::Tensor backward_cpu(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& logsumexp,
                           const torch::Tensor& entropy, const torch::Tensor& grad_lp, const torch::Tensor& grad_ent,
                           const GatherSpec& spec) {
  const int64_t rows = targets.numel(), vocab = logits.size(-1);
  auto grad = torch::empty(logits.sizes(), logits.options().memory_format(torch::MemoryFormat::Contiguous));
  const auto offsets = row_offsets(logits);
  const int64_t* target = targets.const_data_ptr<int64_t>();
  const float* lse = logsumexp.const_data_ptr<float>();
  const float* ent = entropy.defined() ? entropy.const_data_ptr<float>() : nullptr;
  const float* g_lp = grad_lp.defined() ? grad_lp.const_data_ptr<float>() : nullptr;
  const float* g_ent = grad_ent.defined() && ent ? grad_ent.const_data_ptr<float>() : nullptr;
  const bool bf16 = logits.scalar_type() == torch::kBFloat16;
  const auto& k = cpu_kernels();
  at::parallel_for(0, rows, grain(vocab), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      cpu::RowGrad g;
      const bool ignored = spec.ignored(target[r]);
      g.target = ignored ? -1 : target[r];
      g.logsumexp = lse[r];
      g.entropy = ent ? ent[r] : 0.f;
      g.g_lp = g_lp && !ignored ? g_lp[r] : 0.f;
      g.g_ent = g_ent ? g_ent[r] : 0.f;
      const auto offset = offsets[static_cast<size_t>(r)];
      if (g.g_lp == 0.f && g.g_ent == 0.f) {  // an ignored row, or one whose outputs were not used
        std::memset(static_cast<char*>(grad.data_ptr()) + r * vocab * grad.element_size(), 0,
                    static_cast<size_t>(vocab * grad.element_size()));
      } else if (bf16) {
        k.backward_bf16(reinterpret_cast<const uint16_t*>(logits.const_data_ptr<c10::BFloat16>()) + offset, vocab, g,
                        reinterpret_cast<uint16_t*>(grad.data_ptr<c10::BFloat16>()) + r * vocab);
      } else {
        k.backward_f32(logits.const_data_ptr<float>() + offset, vocab, g, grad.data_ptr<float>() + r * vocab);
      }
    }
  });
  return grad;
}

#ifdef TROUPE_LOGPROB_GATHER_CUDA
/// The CUDA kernels take the rows as a matrix (N, V) (any row stride; reshape copies
/// only leading dims that do not collapse).
torch::Tensor as_rows(const torch::Tensor& logits) {
  return logits.reshape({leading_rows(logits), logits.size(-1)});  // (N, V)
}

std::optional<int64_t> cuda_ignore_index(const GatherSpec& spec) {
  return spec.has_ignore ? std::optional<int64_t>(spec.ignore_index) : std::nullopt;
}
#endif

Forward forward_rows(const torch::Tensor& logits, const torch::Tensor& targets, const GatherSpec& spec) {
#ifdef TROUPE_LOGPROB_GATHER_CUDA
  if (logits.is_cuda()) {
    auto out = cuda::logprob_gather_forward(as_rows(logits), targets, spec.with_entropy, cuda_ignore_index(spec));
    return {out[0], out[1], out[2]};
  }
#endif
  return forward_cpu(logits, targets, spec);
}

torch::Tensor backward_rows(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& logsumexp,
                            const torch::Tensor& entropy, const torch::Tensor& grad_lp, const torch::Tensor& grad_ent,
                            const GatherSpec& spec) {
#ifdef TROUPE_LOGPROB_GATHER_CUDA
  if (logits.is_cuda()) {
    // The CUDA backward recomputes the entropy and wants a log-prob gradient (zero when unused).
    auto g_lp = grad_lp.defined() ? grad_lp : torch::zeros({targets.numel()}, logsumexp.options());
    return cuda::logprob_gather_backward(as_rows(logits), targets, logsumexp, g_lp, grad_ent, cuda_ignore_index(spec))
        .view(logits.sizes());
  }
#endif
  return backward_cpu(logits, targets, logsumexp, entropy, grad_lp, grad_ent, spec);
}

/// Saves the logits, the targets and the per-row log-sum-exp (and entropy): the
/// backward recomputes the softmax from them instead of keeping (N, V) probabilities.
struct GatherLogprobsFunction : public torch::autograd::Function<GatherLogprobsFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits,
                                                const torch::Tensor& targets, int64_t ignore_index, bool has_ignore,
                                                bool with_entropy) {
    const GatherSpec spec{has_ignore, ignore_index, with_entropy};
    auto out = forward_rows(logits, targets, spec);
    ctx->save_for_backward({logits, targets, out.logsumexp, out.entropy});
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["has_ignore"] = has_ignore;
    const auto shape = leading_shape(logits);
    if (!with_entropy) return {out.logprobs.view(shape)};
    return {out.logprobs.view(shape), out.entropy.view(shape)};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& logits = saved[0];
    GatherSpec spec{ctx->saved_data["has_ignore"].toBool(), ctx->saved_data["ignore_index"].toInt(),
                    saved[3].defined()};
    auto flat = [](const torch::Tensor& g) {
      return g.defined() ? g.to(torch::kFloat32).reshape({-1}).contiguous() : torch::Tensor();
    };
    auto grad_ent = grads.size() > 1 ? flat(grads[1]) : torch::Tensor();
    auto grad = backward_rows(logits, saved[1], saved[2], saved[3], flat(grads[0]), grad_ent, spec);
    return {grad, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

/// Checks the inputs and brings them to what the kernels read: logits fp32 or bf16
/// with unit stride along V, targets (N) int64 contiguous on the same device. Any
/// target outside [0, V) other than the ignored one is refused naming it.
std::pair<torch::Tensor, torch::Tensor> prepare(const char* where, const torch::Tensor& logits,
                                                const torch::Tensor& targets, const GatherSpec& spec) {
  TORCH_CHECK(logits.defined() && targets.defined(), where, ": logits and targets must be defined");
  TORCH_CHECK(logits.dim() >= 1, where, ": logits must be (..., V), got a scalar");
  TORCH_CHECK(targets.sizes() == logits.sizes().slice(0, logits.dim() - 1), where, ": targets ", targets.sizes(),
              " must be logits ", logits.sizes(), " without the last dim");
  TORCH_CHECK(logits.is_floating_point(), where, ": logits must be floating point, got ", logits.scalar_type());
  TORCH_CHECK(!targets.is_floating_point() && !targets.is_complex(), where, ": targets must be integers, got ",
              targets.scalar_type());
  TORCH_CHECK(targets.device() == logits.device(), where, ": targets on ", targets.device(), ", logits on ",
              logits.device());
  auto x = logits;
  if (x.scalar_type() != torch::kFloat32 && x.scalar_type() != torch::kBFloat16) x = x.to(torch::kFloat32);
  if (x.dim() > 0 && x.size(-1) > 1 && x.stride(-1) != 1) x = x.contiguous();
  auto t = targets.reshape({-1}).to(torch::kLong).contiguous();  // (N)
  const int64_t vocab = x.size(-1);
  auto bad = (t < 0) | (t >= vocab);
  if (spec.has_ignore) bad = bad & (t != spec.ignore_index);
  if (t.numel() > 0 && bad.any().item<bool>()) {
    const auto position = bad.to(torch::kInt).argmax().item<int64_t>();
    throw Error(std::string(where) + ": target " + std::to_string(t[position].item<int64_t>()) + " at position " +
                std::to_string(position) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")" +
                (spec.has_ignore ? " and is not the ignore index " + std::to_string(spec.ignore_index) : ""));
  }
  return {x, t};
}

bool cuda_without_kernel(const torch::Tensor& logits) {
#ifdef TROUPE_LOGPROB_GATHER_CUDA
  return false;
#else
  return logits.is_cuda();
#endif
}

torch::autograd::variable_list run(const char* where, const torch::Tensor& logits, const torch::Tensor& targets,
                                   const GatherSpec& spec) {
  auto [x, t] = prepare(where, logits, targets, spec);
  if (at::GradMode::is_enabled() && x.requires_grad())
    return GatherLogprobsFunction::apply(x, t, spec.ignore_index, spec.has_ignore, spec.with_entropy);
  // Without autograd nothing is saved.
  auto out = forward_rows(x, t, spec);
  const auto shape = leading_shape(x);
  if (!spec.with_entropy) return {out.logprobs.view(shape)};
  return {out.logprobs.view(shape), out.entropy.view(shape)};
}

}  // namespace

torch::Tensor gather_logprobs(const torch::Tensor& logits, const torch::Tensor& targets,
                              std::optional<int64_t> ignore_index) {
  if (cuda_without_kernel(logits)) return reference::gather_logprobs(logits, targets, ignore_index);
  GatherSpec spec;
  spec.has_ignore = ignore_index.has_value();
  spec.ignore_index = ignore_index.value_or(0);
  return run("gather_logprobs", logits, targets, spec)[0];
}

std::pair<torch::Tensor, torch::Tensor> gather_logprobs_and_entropy(const torch::Tensor& logits,
                                                                    const torch::Tensor& targets) {
  if (cuda_without_kernel(logits)) return reference::gather_logprobs_and_entropy(logits, targets);
  GatherSpec spec;
  spec.with_entropy = true;
  auto out = run("gather_logprobs_and_entropy", logits, targets, spec);
  return {out[0], out[1]};
}

}  // namespace troupe::kernels
