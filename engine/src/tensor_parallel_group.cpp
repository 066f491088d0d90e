#include "tensor_parallel_group.hpp"

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::engine {

GroupPrompts gather_group_prompts(const torch::Tensor& ids, const torch::Tensor& mask,
                                  const models::TensorParallelRank& group) {
  const int world = group.world, rank = group.rank;
  auto long_options = torch::TensorOptions().dtype(torch::kLong).device(ids.device());
  auto shapes = torch::zeros({world, 2}, long_options);  // (B_i, T_i)
  shapes[rank][0] = ids.size(0);
  shapes[rank][1] = ids.size(1);
  group.all_reduce_sum(shapes);
  shapes = shapes.cpu();
  const int64_t max_rows = shapes.select(1, 0).max().item<int64_t>();
  const int64_t max_length = shapes.select(1, 1).max().item<int64_t>();

  GroupPrompts out;
  out.rows = ids.size(0);
  out.extra_columns = max_length - ids.size(1);
  // One buffer for ids and mask: row 0 the ids, row 1 the mask, each rank its slot.
  auto slots = torch::zeros({2, world, max_rows, max_length}, long_options);
  slots[0][rank].narrow(0, 0, out.rows).narrow(1, out.extra_columns, ids.size(1)).copy_(ids);
  slots[1][rank].narrow(0, 0, out.rows).narrow(1, out.extra_columns, ids.size(1)).copy_(mask);
  group.all_reduce_sum(slots);
  std::vector<torch::Tensor> id_rows, mask_rows;
  for (int i = 0; i < world; ++i) {
    const int64_t rows = shapes[i][0].item<int64_t>();
    if (i < rank) out.first_row += rows;
    id_rows.push_back(slots[0][i].narrow(0, 0, rows));
    mask_rows.push_back(slots[1][i].narrow(0, 0, rows));
  }
  out.ids = torch::cat(id_rows).to(ids.scalar_type());
  out.mask = torch::cat(mask_rows).to(mask.scalar_type());
  return out;
}

uint64_t group_seed(uint64_t seed, const models::TensorParallelRank& group) {
  auto value = torch::zeros({1}, torch::kLong);
  if (group.rank == 0) value[0] = static_cast<int64_t>(seed);
  group.all_reduce_sum(value);
  return static_cast<uint64_t>(value.item<int64_t>());
}

void require_same_tokens(const torch::Tensor& sequences, const models::TensorParallelRank& group) {
  // A position-weighted sum catches swapped tokens as well as changed ones.
  auto flat = sequences.reshape({-1}).to(torch::kDouble).cpu();
  const double checksum = (flat * torch::arange(1, flat.numel() + 1, torch::kDouble)).sum().item<double>();
  auto sums = torch::zeros({group.world}, torch::kDouble);
  sums[group.rank] = checksum;
  group.all_reduce_sum(sums);
  for (int i = 0; i < group.world; ++i)
    if (sums[i].item<double>() != checksum)
      throw Error("tensor-parallel generation: rank " + std::to_string(i) + " of the group generated other tokens than rank " +
                  std::to_string(group.rank) + " (their all-reduces disagree)");
}

models::GenerationResult own_rows(const models::GenerationResult& group_result, const GroupPrompts& prompts) {
  models::GenerationResult out;
  const int64_t columns = group_result.sequences.size(1) - prompts.extra_columns;
  out.sequences = group_result.sequences.narrow(0, prompts.first_row, prompts.rows).narrow(1, prompts.extra_columns, columns);
  out.attention_mask =
      group_result.attention_mask.narrow(0, prompts.first_row, prompts.rows).narrow(1, prompts.extra_columns, columns);
  out.prompt_length = group_result.prompt_length - prompts.extra_columns;
  return out;
}

}  // namespace troupe::engine
