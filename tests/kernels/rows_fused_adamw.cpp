// Consistency rows of fused_adamw: one call over tensors of awkward sizes (a 16-lane
// tail, a single element, a million and three), with and without weight decay, at the
// first step and at step 10 (moments already warm), with and without bf16 copies,
// against torch::optim::AdamW's element-wise ops. The kernel's sqrt rounds correctly
// where torch's (MKL's) may be 1 ulp off, so parameters agree to ~1e-7 relative per
// element and the moments exactly.
#include <torch/torch.h>

#include <string>

#include <troupe/kernels/fused_adamw.hpp>

#include "consistency_table.hpp"

namespace {

using troupe::test::ConsistencyOutputs;
using troupe::test::ConsistencyRow;

struct Case {
  double weight_decay;
  int64_t step;
  bool bf16_copies;
};

ConsistencyOutputs run_case(const Case& c) {
  const std::vector<int64_t> sizes = {1, 17, 1000003, 4096};
  troupe::kernels::AdamWHyper hyper;
  hyper.lr = 3e-3;
  hyper.beta1 = 0.9;
  hyper.beta2 = 0.95;
  hyper.eps = 1e-8;
  hyper.weight_decay = c.weight_decay;

  auto g = at::make_generator<at::CPUGeneratorImpl>(21);
  std::vector<torch::Tensor> p0, g0, m0, v0;
  for (const auto n : sizes) {
    p0.push_back(torch::randn({n}, g));
    g0.push_back(torch::randn({n}, g) * 1e-2);
    // Step 1 starts from zero moments, as torch's state initialisation.
    m0.push_back(c.step == 1 ? torch::zeros({n}) : torch::randn({n}, g) * 1e-3);
    v0.push_back(c.step == 1 ? torch::zeros({n}) : torch::rand({n}, g) * 1e-4);
  }
  // A tensor without a gradient is skipped: it must come back unchanged.
  g0[3] = torch::Tensor();

  auto run = [&](bool kernel) {
    std::vector<torch::Tensor> p, m, v, copies;
    for (size_t i = 0; i < sizes.size(); ++i) {
      p.push_back(p0[i].clone());
      m.push_back(m0[i].clone());
      v.push_back(v0[i].clone());
      if (c.bf16_copies) copies.push_back(torch::zeros({sizes[i]}, torch::kBFloat16));
    }
    const std::vector<int64_t> steps(sizes.size(), c.step);
    if (kernel)
      troupe::kernels::fused_adamw(p, g0, m, v, steps, hyper, copies);
    else
      troupe::kernels::reference::fused_adamw(p, g0, m, v, steps, hyper, copies);
    std::vector<torch::Tensor> outputs;
    for (size_t i = 0; i < sizes.size(); ++i) {
      outputs.insert(outputs.end(), {p[i], m[i], v[i]});
      if (c.bf16_copies) outputs.push_back(copies[i]);
    }
    return outputs;
  };
  auto out = ConsistencyOutputs{run(true), run(false)};
  // The reference must have moved what has a gradient and left the rest (or the row
  // would check nothing).
  const size_t per_tensor = c.bf16_copies ? 4 : 3;
  TORCH_CHECK(!torch::equal(out.reference[2 * per_tensor], p0[2]) && torch::equal(out.reference[3 * per_tensor], p0[3]),
              "fused_adamw rows: the reference did not step as expected");
  return out;
}

}  // namespace

TROUPE_CONSISTENCY_ROWS(rows) {
  for (const double decay : {0.0, 0.1})
    for (const int64_t step : {int64_t{1}, int64_t{10}})
      for (const bool copies : {false, true}) {
        const Case c{decay, step, copies};
        const std::string shape = "sizes=1,17,1000003,4096(no grad) wd=" + std::string(decay ? "0.1" : "0") +
                                  " step=" + std::to_string(step) + (copies ? " bf16 copies" : "");
        // A bf16 copy that lands on the other side of a rounding boundary costs 2^-16.
        rows.push_back({"fused_adamw", shape, "fp32", "cpu", copies ? 1e-10 : 1e-12, [c] { return run_case(c); }});
      }
}
