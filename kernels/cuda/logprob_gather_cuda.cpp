#include "cuda/logprob_gather_cuda.hpp"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "cuda/dtype_of.hpp"
#include "cuda/launch_check.hpp"
#include "cuda/logprob_gather.cuh"

namespace troupe::kernels::cuda {
namespace {

void check_rows(const torch::Tensor& logits, const torch::Tensor& targets, const char* op) {
  TORCH_CHECK(logits.defined() && logits.dim() == 2, op, ": logits must be (N, V), got ",
              logits.defined() ? logits.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()), op, ": logits must be a float tensor, got ",
              logits.scalar_type());
  TORCH_CHECK(targets.defined() && targets.dim() == 1 && targets.size(0) == logits.size(0), op,
              ": targets must be (N) = (", logits.size(0), "), got ", targets.defined() ? targets.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(targets.scalar_type() == torch::kInt64, op, ": targets must be int64, got ", targets.scalar_type());
  TORCH_CHECK(logits.size(1) > 0 || logits.size(0) == 0, op, ": an empty vocabulary");
}

/// A per-row fp32 vector (N) the kernels read, or a clear error.
torch::Tensor row_vector(const torch::Tensor& t, int64_t n, const char* op, const char* name) {
  TORCH_CHECK(t.defined() && t.dim() == 1 && t.size(0) == n, op, ": ", name, " must be (N) = (", n, "), got ",
              t.defined() ? t.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name, " must be a float tensor, got ", t.scalar_type());
  return t.to(torch::kFloat32).contiguous();
}

void check_device(const torch::Tensor& logits, std::initializer_list<const torch::Tensor*> others, const char* op) {
  TORCH_CHECK(logits.is_cuda(), op, ": logits must be on a CUDA device, got ", logits.device());
  for (const auto* t : others)
    TORCH_CHECK(!t->defined() || t->device() == logits.device(), op, ": every tensor must be on ", logits.device(),
                ", one is on ", t->device());
}

/// Logits as the kernels read them: fp32/bf16/fp16 in place (strided rows allowed).
torch::Tensor readable(const torch::Tensor& logits) {
  auto l = float_dtype_of(logits.scalar_type()) ? logits : logits.to(torch::kFloat32);
  return l.stride(1) == 1 || l.size(1) <= 1 ? l : l.contiguous();
}

}  // namespace

std::vector<torch::Tensor> logprob_gather_forward(const torch::Tensor& logits2d, const torch::Tensor& targets1d,
                                                  bool entropy, std::optional<int64_t> ignore_index) {
  constexpr const char* op = "logprob_gather_forward";
  check_rows(logits2d, targets1d, op);
  check_device(logits2d, {&targets1d}, op);
  const c10::cuda::CUDAGuard guard(logits2d.device());

  const auto l = readable(logits2d);      // (N, V)
  const auto t = targets1d.contiguous();  // (N)
  const int64_t n = l.size(0), v = l.size(1);
  const auto f32 = l.options().dtype(torch::kFloat32);
  auto logprobs = torch::empty({n}, f32), lse = torch::empty({n}, f32);
  torch::Tensor ent = entropy ? torch::empty({n}, f32) : torch::Tensor();
  if (n > 0) {
    logprob_gather_forward(l.data_ptr(), *float_dtype_of(l.scalar_type()), n, v, l.stride(0),
                           t.data_ptr<int64_t>(), ignore_index.has_value(), ignore_index.value_or(0),
                           logprobs.data_ptr<float>(), lse.data_ptr<float>(),
                           entropy ? ent.data_ptr<float>() : nullptr, at::cuda::getCurrentCUDAStream());
    check_launch(op);
  }
  return {logprobs, lse, ent};
}

torch::Tensor logprob_gather_backward(const torch::Tensor& logits2d, const torch::Tensor& targets1d,
                                      const torch::Tensor& logsumexp, const torch::Tensor& grad_logprobs,
                                      const torch::Tensor& grad_entropy, std::optional<int64_t> ignore_index) {
  constexpr const char* op = "logprob_gather_backward";
  check_rows(logits2d, targets1d, op);
  const int64_t n = logits2d.size(0);
  const auto lse = row_vector(logsumexp, n, op, "logsumexp");
  const auto g_lp = row_vector(grad_logprobs, n, op, "grad_logprobs");
  const auto g_ent = grad_entropy.defined() ? row_vector(grad_entropy, n, op, "grad_entropy") : torch::Tensor();
  check_device(logits2d, {&targets1d, &lse, &g_lp, &g_ent}, op);
  const c10::cuda::CUDAGuard guard(logits2d.device());

  const auto l = readable(logits2d);      // (N, V)
  const auto t = targets1d.contiguous();  // (N)
  auto grad = torch::empty({n, l.size(1)}, l.options());  // (N, V) in the dtype read
  if (n > 0) {
    logprob_gather_backward(l.data_ptr(), *float_dtype_of(l.scalar_type()), n, l.size(1), l.stride(0),
                            t.data_ptr<int64_t>(), ignore_index.has_value(), ignore_index.value_or(0),
                            lse.data_ptr<float>(), g_lp.data_ptr<float>(),
                            g_ent.defined() ? g_ent.data_ptr<float>() : nullptr, grad.data_ptr(),
                            at::cuda::getCurrentCUDAStream());
    check_launch(op);
  }
  return grad.scalar_type() == logits2d.scalar_type() ? grad : grad.to(logits2d.scalar_type());
}

}  // namespace troupe::kernels::cuda
