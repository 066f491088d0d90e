// The mode table's modes over two ranks as threads of this process (mode_table.hpp):
// tensor-parallel slices summed through thread_sum_group.hpp, and ZeRO-3 partitions
// gathered layer by layer through thread_collectives.hpp. Every rank scores the whole
// batch; the row takes rank 0's result and bounds how far rank 1's is from it.
#include <algorithm>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <troupe/engine/zero3.hpp>
#include <troupe/models/tensor_parallel.hpp>

#include "../models/thread_sum_group.hpp"
#include "mode_table.hpp"
#include "thread_collectives.hpp"
#include "zero3_fixtures.hpp"

namespace troupe::test {
namespace {

constexpr int kRanks = 2;

/// Rank 0's run, with the largest difference of any rank's logits and log-probs from it.
ModeRun first_rank(std::vector<ModeRun> ranks) {
  double spread = 0;
  for (const auto& rank : ranks)
    spread = std::max({spread, max_abs_diff(rank.logits, ranks[0].logits), max_abs_diff(rank.logprobs, ranks[0].logprobs)});
  auto run = std::move(ranks[0]);
  run.extra.emplace_back("ranks", spread);
  return run;
}

/// Whether every parameter of the decoder layers is a 0-element placeholder (what a
/// ZeRO-3 rank keeps of them between passes).
bool layers_are_placeholders(models::CausalLMImpl& model) {
  int64_t placeholders = 0, layer_parameters = 0;
  for (const auto& p : model.named_parameters()) {
    if (p.key().find("layers.") == std::string::npos && p.key().find(".h.") == std::string::npos) continue;
    ++layer_parameters;
    placeholders += p.value().numel() == 0;
  }
  return layer_parameters > 0 && placeholders == layer_parameters;
}

}  // namespace

ModeRun run_tensor_parallel_2(const ModeInput& input) {
  ThreadSumGroup group(kRanks);
  std::vector<ModeRun> ranks(kRanks);
  run_ranks(
      [&](int rank) {
        auto model = load_fixture_model(input.family, input.device);
        models::enter_tensor_parallel(*model, group.rank(rank));
        ranks[static_cast<size_t>(rank)] = score(*model, input);
      },
      kRanks);
  auto run = first_rank(std::move(ranks));
  if (group.all_reduces() == 0) run.vacuous.push_back("no all-reduce ran: the layers were not split");
  return run;
}

ModeRun run_zero3_2(const ModeInput& input) {
  ThreadCollectives group(kRanks);
  std::vector<ModeRun> ranks(kRanks);
  std::vector<std::string> vacuous(kRanks);
  run_ranks(
      [&](int rank) {
        auto model = load_fixture_model(input.family, input.device);
        engine::Zero3Partition partition(model, group.zero3(rank));
        const bool partitioned_before = layers_are_placeholders(*model);
        ranks[static_cast<size_t>(rank)] = score(*model, input);  // gathers each layer as it runs
        const bool partitioned_after = layers_are_placeholders(*model);
        auto& why = vacuous[static_cast<size_t>(rank)];
        if (!partitioned_before || !partitioned_after)
          why = "rank " + std::to_string(rank) + " held whole layers outside the pass";
        else if (partition.received_bytes() == 0)
          why = "rank " + std::to_string(rank) + " gathered nothing from the other rank";
      },
      kRanks);
  auto run = first_rank(std::move(ranks));
  for (const auto& why : vacuous)
    if (!why.empty()) run.vacuous.push_back(why);
  return run;
}

}  // namespace troupe::test
