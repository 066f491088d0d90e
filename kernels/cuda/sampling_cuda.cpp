#include "cuda/sampling_cuda.hpp"

#include <limits>

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "cuda/dtype_of.hpp"
#include "cuda/launch_check.hpp"
#include "cuda/sampling.cuh"

namespace troupe::kernels::cuda {
namespace {

constexpr const char* kOp = "sample_next_tokens";

/// Logits the kernels read: fp32/bf16/fp16 as they are (rows may be strided), other
/// float dtypes as fp32.
torch::Tensor readable(const torch::Tensor& logits) {
  auto l = float_dtype_of(logits.scalar_type()) ? logits : logits.to(torch::kFloat32);
  return l.stride(1) == 1 ? l : l.contiguous();
}

}  // namespace

torch::Tensor sample_next_tokens(const torch::Tensor& logits, const SamplingParams& params, at::Generator& generator) {
  TORCH_CHECK(logits.defined() && logits.dim() == 2, kOp, ": logits must be (B, V), got ",
              logits.defined() ? logits.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()), kOp, ": logits must be a float tensor, got ",
              logits.scalar_type());
  const int64_t b = logits.size(0), v = logits.size(1);
  TORCH_CHECK(v > 0 || b == 0, kOp, ": an empty vocabulary");
  if (params.do_sample) {
    TORCH_CHECK(params.temperature > 0, kOp, ": temperature must be > 0 when sampling, got ", params.temperature);
    TORCH_CHECK(params.top_k >= 0, kOp, ": top_k must be >= 0, got ", params.top_k);
    TORCH_CHECK(params.top_p > 0 && params.top_p <= 1, kOp, ": top_p must be in (0, 1], got ", params.top_p);
  }
  TORCH_CHECK(logits.is_cuda(), kOp, ": logits must be on a CUDA device, got ", logits.device());
  const c10::cuda::CUDAGuard guard(logits.device());

  auto tokens = torch::empty({b}, logits.options().dtype(torch::kInt64));  // (B)
  if (b == 0) return tokens;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  if (!params.do_sample) {
    const auto l = readable(logits);  // (B, V)
    greedy_tokens(l.data_ptr(), *float_dtype_of(l.scalar_type()), b, v, l.stride(0), tokens.data_ptr<int64_t>(),
                  stream);
    check_launch(kOp);
    return tokens;
  }

  // The draw first: the same (B, V) fp32 exponential_ at::multinomial makes.
  const auto q = torch::empty({b, v}, logits.options().dtype(torch::kFloat32)).exponential_(1, generator);  // (B, V)
  // torch divides by a scalar on CUDA as a multiply by its fp32 reciprocal; the kernel
  // and the threshold below compute s the same way, so they agree to the bit.
  const float inv_t = 1.0f / static_cast<float>(params.temperature);
  const bool top_k = params.top_k > 0 && params.top_k < v;
  const bool top_p = params.top_p < 1.0;

  torch::Tensor l = readable(logits);  // (B, V)
  float kernel_inv_t = inv_t;
  torch::Tensor threshold;  // (B) or undefined
  if (top_p) {
    // Hugging Face's order: temperature, top-k, top-p; the masked s go to the kernel as is.
    auto s = l.to(torch::kFloat32) * static_cast<double>(inv_t);  // (B, V)
    const float neg_inf = -std::numeric_limits<float>::infinity();
    if (top_k) {
      const auto kth = std::get<0>(s.topk(params.top_k, /*dim=*/-1)).narrow(1, params.top_k - 1, 1);  // (B, 1)
      s = s.masked_fill(s < kth, neg_inf);
    }
    auto [sorted, order] = s.sort(/*dim=*/-1, /*descending=*/false);
    auto remove = sorted.softmax(-1).cumsum(-1) <= (1.0 - params.top_p);  // (B, V)
    remove.narrow(1, v - 1, 1).fill_(false);                             // the most likely stays
    s = s.masked_fill(remove.scatter(1, order, remove), neg_inf);
    l = s.contiguous();
    kernel_inv_t = 1.0f;
  } else if (top_k) {
    const auto s = l.to(torch::kFloat32) * static_cast<double>(inv_t);                             // (B, V)
    threshold = std::get<0>(s.topk(params.top_k, /*dim=*/-1)).select(1, params.top_k - 1).contiguous();  // (B)
  }
  sampled_tokens(l.data_ptr(), *float_dtype_of(l.scalar_type()), b, v, l.stride(0), kernel_inv_t,
                 threshold.defined() ? threshold.data_ptr<float>() : nullptr, q.data_ptr<float>(),
                 tokens.data_ptr<int64_t>(), stream);
  check_launch(kOp);
  return tokens;
}

}  // namespace troupe::kernels::cuda
