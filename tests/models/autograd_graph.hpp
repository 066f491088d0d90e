#pragma once
/// What a test reads from an autograd graph.
#include <string>
#include <unordered_set>
#include <vector>

#include <torch/torch.h>

namespace troupe::test {

/// How many layer recomputations (gradient checkpoints) the graph of `root` holds.
inline int count_checkpoints(const torch::Tensor& root) {
  int count = 0;
  std::unordered_set<torch::autograd::Node*> seen;
  std::vector<torch::autograd::Node*> stack{root.grad_fn().get()};
  while (!stack.empty()) {
    auto* node = stack.back();
    stack.pop_back();
    if (!node || !seen.insert(node).second) continue;
    if (node->name().find("CheckpointFunction") != std::string::npos) ++count;
    for (const auto& edge : node->next_edges()) stack.push_back(edge.function.get());
  }
  return count;
}

}  // namespace troupe::test
