#pragma once
/// bf16 autocast on the CPU for a scope (what engine::AutocastScope does), for the
/// models' tests, which do not link the engine.
#include <ATen/autocast_mode.h>
#include <torch/types.h>

namespace troupe::test {

struct Bf16Autocast {
  Bf16Autocast() {
    at::autocast::set_autocast_dtype(torch::kCPU, torch::kBFloat16);
    at::autocast::set_autocast_enabled(torch::kCPU, true);
  }
  ~Bf16Autocast() {
    at::autocast::set_autocast_enabled(torch::kCPU, false);
    at::autocast::clear_cache();
  }
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;
};

}  // namespace troupe::test
