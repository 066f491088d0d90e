#pragma once
// How fused_adamw's tensors are cut into multi-tensor launches (host side, no CUDA):
// each tensor in chunks of `chunk` elements, a block a chunk; a launch takes at most
// `max_tensors` tensors and `max_blocks` blocks (both bounded by the kernel-parameter
// space that carries them), and a tensor whose chunks do not fit goes on in the next.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace troupe::kernels::cuda {

struct AdamWBlock {
  int slot = 0;       // index into the launch's `tensors`
  int64_t chunk = 0;  // elements [chunk * chunk_size, ...) of that tensor
};

struct AdamWLaunchPlan {
  std::vector<size_t> tensors;  // indices into the caller's list
  std::vector<AdamWBlock> blocks;
};

/// Launches for tensors of `numels` elements (empty tensors need none).
inline std::vector<AdamWLaunchPlan> plan_adamw_launches(const std::vector<int64_t>& numels, int64_t chunk,
                                                        size_t max_tensors, size_t max_blocks) {
  std::vector<AdamWLaunchPlan> plans;
  AdamWLaunchPlan cur;
  for (size_t i = 0; i < numels.size(); ++i) {
    if (numels[i] <= 0) continue;
    const int64_t chunks = (numels[i] + chunk - 1) / chunk;
    cur.tensors.push_back(i);
    int slot = static_cast<int>(cur.tensors.size()) - 1;
    for (int64_t c = 0; c < chunks; ++c) {
      cur.blocks.push_back({slot, c});
      const bool last = c == chunks - 1;
      // Full: no block left, or no tensor slot for the next tensor.
      if (cur.blocks.size() == max_blocks || (last && cur.tensors.size() == max_tensors)) {
        plans.push_back(std::move(cur));
        cur = AdamWLaunchPlan{};
        if (!last) {  // this tensor's remaining chunks open the next launch
          cur.tensors.push_back(i);
          slot = 0;
        }
      }
    }
  }
  if (!cur.blocks.empty()) plans.push_back(std::move(cur));
  return plans;
}

}  // namespace troupe::kernels::cuda
