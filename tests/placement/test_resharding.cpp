#include <catch2/catch.hpp>

#include <numeric>
#include <string>

#include <troupe/common/error.hpp>
#include <troupe/placement/resharding.hpp>

using namespace troupe::placement;

namespace {

std::vector<float> iota(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 1.0f);  // 1-based so padding zeros stand out
  return v;
}

/// Rank r's TP slice of a (rows, cols) matrix, written with plain loops.
std::vector<float> tp_slice_2d(const std::vector<float>& full, int64_t rows, int64_t cols, int dim, int world, int r) {
  std::vector<float> out;
  if (dim == 0) {
    const int64_t k = rows / world;
    for (int64_t i = r * k; i < (r + 1) * k; ++i)
      for (int64_t j = 0; j < cols; ++j) out.push_back(full[static_cast<size_t>(i * cols + j)]);
  } else {
    const int64_t k = cols / world;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = r * k; j < (r + 1) * k; ++j) out.push_back(full[static_cast<size_t>(i * cols + j)]);
  }
  return out;
}

/// Every real destination element written exactly once, padding never, all in bounds.
void check_coverage(const ReshardPlan& plan) {
  for (int d = 0; d < plan.to.world; ++d) {
    std::vector<int> written(static_cast<size_t>(local_size(plan.to, plan.shape, d)), 0);
    for (const auto& t : plan.transfers) {
      if (t.dst_rank != d) continue;
      REQUIRE(t.count > 0);
      REQUIRE(t.src_offset + t.count <= local_size(plan.from, plan.shape, t.src_rank));
      REQUIRE(t.dst_offset + t.count <= static_cast<int64_t>(written.size()));
      for (int64_t i = 0; i < t.count; ++i) ++written[static_cast<size_t>(t.dst_offset + i)];
    }
    std::vector<int> expected(written.size(), 0);
    for (const auto& s : local_segments(plan.to, plan.shape, d))
      std::fill(expected.begin() + s.local_offset, expected.begin() + s.local_offset + s.count, 1);
    CHECK(written == expected);
  }
}

}  // namespace

TEST_CASE("ZeRO shards: flattened, even chunks, padded like DeepSpeed", "[placement][sharding]") {
  const std::vector<int64_t> shape{5, 3};  // 15 elements over 4 ranks: chunks of 4, 1 padding
  const auto zero = ShardingLayout::zero_shard(4);
  CHECK(local_size(zero, shape, 0) == 4);
  CHECK(local_size(zero, shape, 3) == 4);
  const auto last = local_segments(zero, shape, 3);
  REQUIRE(last.size() == 1);
  CHECK(last[0].global_offset == 12);
  CHECK(last[0].count == 3);
  const auto full = iota(15);
  CHECK(extract_shard(zero, shape, 3, full) == std::vector<float>{13, 14, 15, 0});
  // More ranks than elements: trailing ranks hold only padding.
  CHECK(local_segments(ShardingLayout::zero_shard(8), std::vector<int64_t>{5}, 6).empty());
}

TEST_CASE("TP layouts by parameter name: column q/k/v/fc1, row o/fc2", "[placement][sharding]") {
  const std::vector<int64_t> w{8, 4}, b{8};
  CHECK(tp_layout_for("model.decoder.layers.0.self_attn.q_proj.weight", w, 2).dim == 0);
  CHECK(tp_layout_for("model.decoder.layers.0.self_attn.q_proj.bias", b, 2).kind == LayoutKind::TpPartition);
  CHECK(tp_layout_for("model.decoder.layers.0.fc1.weight", w, 2).dim == 0);
  CHECK(tp_layout_for("model.layers.3.mlp.gate_proj.weight", w, 2).dim == 0);
  const auto o = tp_layout_for("model.decoder.layers.0.self_attn.out_proj.weight", w, 2);
  CHECK(o.kind == LayoutKind::TpPartition);
  CHECK(o.dim == 1);
  CHECK(tp_layout_for("model.layers.0.mlp.down_proj.weight", w, 2).dim == 1);
  CHECK(tp_layout_for("model.decoder.layers.0.fc2.bias", b, 2).kind == LayoutKind::Replicated);
  CHECK(tp_layout_for("model.decoder.embed_tokens.weight", w, 2).kind == LayoutKind::Replicated);
  CHECK(tp_layout_for("model.decoder.layers.0.self_attn_layer_norm.weight", b, 2).kind == LayoutKind::Replicated);
  CHECK_THROWS_WITH(tp_layout_for("model.layers.0.self_attn.k_proj.weight", {6, 4}, 4),
                    "model.layers.0.self_attn.k_proj.weight: tp x4 (dim 0): dim 0 of shape (6, 4) does not split evenly over 4 ranks");
}

TEST_CASE("TP slices: rows for column-parallel, columns for row-parallel", "[placement][sharding]") {
  const std::vector<int64_t> shape{4, 6};
  const auto full = iota(24);
  // Row-parallel (dim 1) over 3 ranks: rank 1 holds columns 2-3 of every row.
  CHECK(extract_shard(ShardingLayout::tp_partition(3, 1), shape, 1, full) == std::vector<float>{3, 4, 9, 10, 15, 16, 21, 22});
  // Column-parallel (dim 0) over 2 ranks: rank 1 holds rows 2-3, one contiguous run.
  CHECK(local_segments(ShardingLayout::tp_partition(2, 0), shape, 1).size() == 1);
  CHECK(extract_shard(ShardingLayout::tp_partition(2, 0), shape, 1, full) == std::vector<float>(full.begin() + 12, full.end()));
}

TEST_CASE("ZeRO-3 -> TP and back: every element exactly once, slices reproduced", "[placement][sharding]") {
  struct Case {
    std::vector<int64_t> shape;
    int zero_world, tp_world, dim;
  };
  const std::vector<Case> cases = {
      {{8, 6}, 4, 2, 0},   // q_proj-like, even
      {{8, 6}, 4, 2, 1},   // out_proj-like, even
      {{6, 10}, 7, 2, 1},  // 60 elements over 7 ranks: chunks of 9, 3 padding
      {{12, 5}, 5, 3, 0},
      {{4, 9}, 8, 3, 1},
      {{10}, 3, 2, 0},     // a column-parallel bias
      {{2, 4, 6}, 5, 2, 1},
      {{3, 4}, 16, 1, 0},  // more ZeRO ranks than elements; TP of one
  };
  for (const auto& c : cases) {
    const auto zero = ShardingLayout::zero_shard(c.zero_world);
    const auto tp = ShardingLayout::tp_partition(c.tp_world, c.dim);
    INFO(describe(zero) << " -> " << describe(tp) << ", numel " << numel(c.shape));
    const auto full = iota(numel(c.shape));
    std::vector<std::vector<float>> shards;
    for (int r = 0; r < c.zero_world; ++r) shards.push_back(extract_shard(zero, c.shape, r, full));

    const auto to_tp = plan_reshard(c.shape, zero, tp);
    check_coverage(to_tp);
    const auto slices = apply_reshard(to_tp, shards);
    for (int r = 0; r < c.tp_world; ++r) {
      if (c.shape.size() == 2) CHECK(slices[static_cast<size_t>(r)] == tp_slice_2d(full, c.shape[0], c.shape[1], c.dim, c.tp_world, r));
      CHECK(slices[static_cast<size_t>(r)] == extract_shard(tp, c.shape, r, full));
    }

    const auto back = plan_reshard(c.shape, tp, zero);
    check_coverage(back);
    CHECK(apply_reshard(back, slices) == shards);  // padding stays zero

    // Every source sends what the destination needs: totals add up to numel.
    int64_t sent = 0;
    for (int s = 0; s < c.zero_world; ++s)
      for (int d = 0; d < c.tp_world; ++d) sent += to_tp.elements(s, d);
    CHECK(sent == numel(c.shape) * 1);
  }
}

TEST_CASE("hand-checked plan: (4, 4) from ZeRO x2 to row-parallel TP x2", "[placement][sharding]") {
  // ZeRO rank 0 holds rows 0-1, rank 1 rows 2-3; TP rank 0 wants columns 0-1 of each row.
  const auto plan = plan_reshard({4, 4}, ShardingLayout::zero_shard(2), ShardingLayout::tp_partition(2, 1));
  std::vector<std::string> got;
  for (const auto& t : plan.transfers)
    got.push_back(std::to_string(t.src_rank) + "->" + std::to_string(t.dst_rank) + " @" + std::to_string(t.src_offset) +
                  " to @" + std::to_string(t.dst_offset) + " x" + std::to_string(t.count));
  CHECK(got == std::vector<std::string>{"0->0 @0 to @0 x2", "0->0 @4 to @2 x2", "1->0 @0 to @4 x2", "1->0 @4 to @6 x2",
                                        "0->1 @2 to @0 x2", "0->1 @6 to @2 x2", "1->1 @2 to @4 x2", "1->1 @6 to @6 x2"});
  CHECK(plan.elements(0, 1) == 4);
}

TEST_CASE("replicated sources, ZeRO world changes, and errors", "[placement][sharding]") {
  const std::vector<int64_t> shape{6, 4};
  const auto full = iota(24);
  // Replicated x2 -> TP x2: each rank copies locally, nothing crosses ranks.
  const auto local = plan_reshard(shape, ShardingLayout::replicated(2), ShardingLayout::tp_partition(2, 0));
  check_coverage(local);
  for (const auto& t : local.transfers) CHECK(t.src_rank == t.dst_rank);
  // ZeRO x3 -> ZeRO x5 (resuming on a different data-parallel world).
  const auto zero3 = ShardingLayout::zero_shard(3), zero5 = ShardingLayout::zero_shard(5);
  std::vector<std::vector<float>> shards;
  for (int r = 0; r < 3; ++r) shards.push_back(extract_shard(zero3, shape, r, full));
  const auto plan = plan_reshard(shape, zero3, zero5);
  check_coverage(plan);
  const auto out = apply_reshard(plan, shards);
  for (int r = 0; r < 5; ++r) CHECK(out[static_cast<size_t>(r)] == extract_shard(zero5, shape, r, full));
  // ZeRO -> replicated is an all-gather: every destination gets every element.
  const auto gathered = apply_reshard(plan_reshard(shape, zero3, ShardingLayout::replicated(2)), shards);
  CHECK(gathered[1] == full);

  CHECK_THROWS_WITH(plan_reshard(shape, zero3, ShardingLayout::tp_partition(2, 2), "fc1.weight"),
                    "fc1.weight (destination): tp x2 (dim 2): shape (6, 4) has no dim 2");
  CHECK_THROWS_WITH(apply_reshard(plan, std::vector<std::vector<float>>(2)), Catch::Contains("2 source buffers for zero-shard x3"));
}

TEST_CASE("flat ZeRO-3 layer -> TP slices: each rank gets its slices of every tensor, each element once",
          "[placement][sharding]") {
  // A layer flat as the engine builds it: (6, 4) column-split, (4, 6) row-split, (6)
  // replicated, (4, 6) with 3 fused blocks of 2 columns split on dim 1; 24+24+6+24 = 78
  // elements over 4 ranks in chunks of 20 (2 of padding).
  const std::vector<std::vector<int64_t>> shapes{{6, 4}, {4, 6}, {6}, {4, 6}};
  const std::vector<int64_t> offsets{0, 24, 48, 54};
  const int zero_world = 4, tp = 2;
  const FlatShards from{shapes, offsets, 20, zero_world};
  const std::vector<ShardingLayout> to{ShardingLayout::tp_partition(tp, 0), ShardingLayout::tp_partition(tp, 1),
                                       ShardingLayout::replicated(tp), ShardingLayout::tp_partition(tp, 1, 3)};
  const auto plan = plan_flat_reshard(from, to, "layer 0");
  const auto flat = iota(78);
  std::vector<std::vector<float>> chunks(zero_world, std::vector<float>(20, 0.0f));
  for (int64_t i = 0; i < 78; ++i) chunks[static_cast<size_t>(i / 20)][static_cast<size_t>(i % 20)] = flat[static_cast<size_t>(i)];

  for (int t = 0; t < tp; ++t) {
    INFO("tp rank " << t);
    // Expected, with plain loops: each tensor's slice, end to end.
    std::vector<float> expected;
    auto tensor = [&](int i) {
      return std::vector<float>(flat.begin() + offsets[static_cast<size_t>(i)],
                                flat.begin() + offsets[static_cast<size_t>(i)] + numel(shapes[static_cast<size_t>(i)]));
    };
    for (float v : tp_slice_2d(tensor(0), 6, 4, 0, tp, t)) expected.push_back(v);
    for (float v : tp_slice_2d(tensor(1), 4, 6, 1, tp, t)) expected.push_back(v);
    for (float v : tensor(2)) expected.push_back(v);
    const auto fused = tensor(3);
    for (int64_t row = 0; row < 4; ++row)
      for (int64_t block = 0; block < 3; ++block)  // column 2 * block + t of each row
        expected.push_back(fused[static_cast<size_t>(row * 6 + block * 2 + t)]);
    REQUIRE(plan.local_sizes[static_cast<size_t>(t)] == static_cast<int64_t>(expected.size()));
    CHECK(plan.local_offsets[static_cast<size_t>(t)] == std::vector<int64_t>{0, 12, 24, 30});

    std::vector<float> got(expected.size(), 0.0f);
    std::vector<int> written(expected.size(), 0);
    for (const auto& x : plan.transfers) {
      if (x.dst_rank != t) continue;
      REQUIRE(x.src_offset + x.count <= 20);
      for (int64_t i = 0; i < x.count; ++i) {
        got[static_cast<size_t>(x.dst_offset + i)] = chunks[static_cast<size_t>(x.src_rank)][static_cast<size_t>(x.src_offset + i)];
        ++written[static_cast<size_t>(x.dst_offset + i)];
      }
    }
    CHECK(got == expected);
    CHECK(written == std::vector<int>(expected.size(), 1));
  }
  // A source sends each rank only what it holds of that rank's slices.
  int64_t sent = 0;
  for (int s = 0; s < zero_world; ++s)
    for (int t = 0; t < tp; ++t) sent += plan.elements(s, t);
  CHECK(sent == plan.local_sizes[0] + plan.local_sizes[1]);

  CHECK_THROWS_WITH(plan_flat_reshard({shapes, offsets, 19, zero_world}, to, "layer 0"),
                    Catch::Contains("do not fit 4 chunks of 19"));
  CHECK_THROWS_WITH(plan_flat_reshard(from, {to[0], to[1], to[2], ShardingLayout::tp_partition(tp, 1, 4)}, "layer 0"),
                    Catch::Contains("layer 0 tensor 3"));
}
