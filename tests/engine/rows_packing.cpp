// The mode table's sequence-packing mode (mode_table.hpp): the fixture's samples laid
// end to end in one row (--packing, data/packed_batch.hpp), each attending only to
// itself with positions restarting, against transformers' logits on the padded batch.
#include <torch/torch.h>

#include <troupe/data/packed_batch.hpp>

#include "mode_table.hpp"

namespace troupe::test {

ModeRun run_sequence_packing(const ModeInput& input) {
  auto model = load_fixture_model(input.family, input.device);
  const auto& ids = input.input_ids;        // (B, T), left padded
  const auto& mask = input.attention_mask;  // (B, T)
  const int64_t b = ids.size(0), t = ids.size(1);
  // Each sample's tokens moved to the front of its row, as the step-1 collator lays them.
  auto right_ids = torch::zeros({b, t}, torch::kLong);
  auto right_mask = torch::zeros({b, t}, torch::kLong);
  std::vector<int64_t> lengths(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) {
    const int64_t n = mask[i].sum().item<int64_t>();
    TORCH_CHECK(mask[i].narrow(0, t - n, n).all().item<bool>(), "row ", i, " of the fixture is not left padded");
    right_ids[i].narrow(0, 0, n).copy_(ids[i].narrow(0, t - n, n));
    right_mask[i].narrow(0, 0, n).fill_(1);
    lengths[static_cast<size_t>(i)] = n;
  }
  const auto packed = data::pack_step1_batch({right_ids, right_mask, right_ids}, b * t, 0);
  torch::Tensor packed_logits;  // (1, L, V)
  {
    torch::NoGradGuard no_grad;
    packed_logits = model->forward(packed.rows.input_ids.to(input.device), packed.rows.attention_mask.to(input.device));
  }
  auto unpacked = data::unpack(packed_logits.to(torch::kCPU, torch::kFloat32), packed.rows);  // (B, T, V)
  ModeRun run;
  run.logits = torch::zeros_like(input.logits);  // (B, T, V), back in the left-padded layout
  for (int64_t i = 0; i < b; ++i) {
    const int64_t n = lengths[static_cast<size_t>(i)];
    run.logits[i].narrow(0, t - n, n).copy_(unpacked[i].narrow(0, 0, n));
  }
  const auto targets = ids.narrow(1, 1, t - 1).unsqueeze(-1);                                      // (B, T - 1, 1)
  run.logprobs = torch::log_softmax(run.logits.narrow(1, 0, t - 1), -1).gather(-1, targets).squeeze(-1);  // (B, T - 1)
  if (packed.rows.input_ids.size(0) != 1 || packed.rows.attention_mask.max().item<int64_t>() < 2)
    run.vacuous.push_back("the samples were not packed together into one row");
  return run;
}

}  // namespace troupe::test
