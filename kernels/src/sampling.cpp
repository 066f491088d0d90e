#include <troupe/kernels/sampling.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <string>

#include <troupe/common/error.hpp>

#include "cpu/sampling.hpp"

#if defined(TROUPE_WITH_CUDA) && __has_include("cuda/sampling_cuda.hpp")
#include "cuda/sampling_cuda.hpp"
#define TROUPE_SAMPLING_CUDA 1
#endif

namespace troupe::kernels {
namespace {

/// The uniforms behind `exponential_(1, generator)` over n fp32 values on the CPU, in
/// its order: per value one random64() (two mt19937 words, the first as the high half),
/// its low 53 bits over 2^53. exponential_ makes q = -log1p(-u) of each; the sampler
/// takes that logarithm only where it can decide a token (cpu/sampling.cpp). Drawn from
/// a copy of the generator's engine in a tight loop, not a locked call per value, and
/// written back: the generator moves on exactly as exponential_ moves it.
void draw_exponential_uniforms(at::Generator& generator, int64_t n, double* u) {
  auto* cpu = at::check_generator<at::CPUGeneratorImpl>(generator);
  std::lock_guard<std::mutex> lock(generator.mutex());
  at::mt19937 engine = cpu->engine();
  constexpr uint64_t kMask = (uint64_t{1} << 53) - 1;
  constexpr double kScale = 1.0 / static_cast<double>(uint64_t{1} << 53);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t high = engine();
    const uint64_t low = engine();
    u[i] = static_cast<double>(((high << 32) | low) & kMask) * kScale;
  }
  cpu->set_engine(engine);
}

}  // namespace

torch::Tensor exponential_draw(int64_t n, at::Generator& generator) {
  std::vector<double> u(static_cast<size_t>(n));
  draw_exponential_uniforms(generator, n, u.data());
  auto q = torch::empty({n}, torch::kFloat32);  // (n)
  float* qp = q.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) qp[i] = cpu::exponential_from_uniform(u[static_cast<size_t>(i)]);
  return q;
}

torch::Tensor sample_next_tokens(const torch::Tensor& logits, const SamplingParams& params, at::Generator& generator) {
  TORCH_CHECK(logits.dim() == 2, "sample_next_tokens: logits must be (B, V), got ", logits.sizes());
  TORCH_CHECK(logits.size(1) > 0, "sample_next_tokens: an empty vocabulary, logits ", logits.sizes());
  if (!logits.is_floating_point()) {
    throw Error(std::string("sample_next_tokens: logits must be floating point, got ") +
                c10::toString(logits.scalar_type()));
  }
  if (params.do_sample && !(params.temperature > 0)) {
    throw Error("sample_next_tokens: temperature must be positive when sampling, got " +
                std::to_string(params.temperature));
  }
  if (params.do_sample && std::isnan(params.top_p)) throw Error("sample_next_tokens: top_p is NaN");
#ifdef TROUPE_SAMPLING_CUDA
  if (logits.is_cuda()) return cuda::sample_next_tokens(logits, params, generator);
#endif
  // Other devices: the LibTorch path (today's, the same tokens).
  if (!logits.is_cpu()) return reference::sample_next_tokens(logits, params, generator);

  const int64_t b = logits.size(0), v = logits.size(1);
  auto tokens = torch::empty({b}, torch::TensorOptions().dtype(torch::kLong));  // (B)
  // multinomial draws nothing for an empty batch: neither do we.
  if (b == 0) return tokens;
  // fp32 would round fp64 logits (and could tie them): argmax them as they are.
  if (!params.do_sample && logits.scalar_type() == torch::kDouble) return logits.argmax(-1);

  const auto x = logits.to(torch::kFloat32);  // (B, V), exact for bf16 / fp16, any strides
  const float* xp = x.data_ptr<float>();
  const int64_t row_stride = x.stride(0), col_stride = x.stride(1);
  int64_t* out = tokens.data_ptr<int64_t>();
  // Rows of a small vocabulary are too cheap to hand out one by one.
  const int64_t grain = std::max<int64_t>(1, 32768 / v);
  if (!params.do_sample) {
    at::parallel_for(0, b, grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) out[r] = cpu::argmax_row(xp + r * row_stride, col_stride, v);
    });
    return tokens;
  }

  // The draw of at::multinomial(probs, 1, false, generator) for probs (B, V) fp32
  // contiguous: one exponential_ over a tensor of that shape, as its uniforms.
  thread_local std::vector<double> uniforms;
  uniforms.resize(static_cast<size_t>(b * v));
  draw_exponential_uniforms(generator, b * v, uniforms.data());
  const double* up = uniforms.data();
  cpu::SampleArgs a;
  a.vocab = v;
  a.temperature = static_cast<float>(params.temperature);
  a.top_k = params.top_k;
  a.top_p = params.top_p;
  std::atomic<int64_t> bad_row{-1};
  at::parallel_for(0, b, grain, [&](int64_t begin, int64_t end) {
    cpu::SampleScratch scratch;
    for (int64_t r = begin; r < end; ++r) {
      out[r] = cpu::sample_row(xp + r * row_stride, col_stride, up + r * v, a, scratch);
      if (out[r] < 0) bad_row.store(r);
    }
  });
  if (bad_row.load() >= 0) {
    throw Error("sample_next_tokens: row " + std::to_string(bad_row.load()) +
                " of the logits has a NaN or no finite largest value");
  }
  return tokens;
}

}  // namespace troupe::kernels
