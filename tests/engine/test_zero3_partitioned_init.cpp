/// ZeRO stage 3 of a model built partitioned (models::PartitionedInit, DeepSpeed's
/// zero.Init): the chunks each rank keeps, and the model they make whole, are those of
/// the same model built whole with the same seed (or loaded whole) and then partitioned;
/// and a rank building one never holds more than its chunks of the decoder layers.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <troupe/common/error.hpp>
#include <troupe/engine/zero3.hpp>
#include <troupe/models/frozen_weights.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/partitioned_init.hpp>
#include <troupe/models/pretrained.hpp>

#include "../models/model_fixtures.hpp"
#include "thread_collectives.hpp"
#include "zero3_fixtures.hpp"

using namespace troupe;
using test::run_ranks;

namespace {

constexpr int kWorld = 3;  // uneven chunks: padding in the last one

/// What a rank's partition holds: its chunks and, gathered, the whole model.
struct RankView {
  std::vector<torch::Tensor> chunks;  // every trainable master chunk, in group order
  std::map<std::string, torch::Tensor> whole;
  int64_t resident = 0;
};

/// Partitions each rank's model on its own thread (`built[r]` from a partitioned build,
/// or null) and returns what each holds.
std::vector<RankView> partition_ranks(std::vector<models::CausalLM> models,
                                      std::vector<std::shared_ptr<models::PartitionedLayers>> built) {
  std::vector<RankView> views(kWorld);
  test::ThreadCollectives group(kWorld);
  run_ranks(
      [&](int rank) {
        const auto r = static_cast<size_t>(rank);
        engine::Zero3Partition partition(models[r], group.zero3(rank), built[r]);
        auto& view = views[r];
        for (const auto& chunks : partition.master_chunks())
          for (const auto& chunk : chunks) view.chunks.push_back(chunk.detach().clone());
        view.resident = partition.param_resident_bytes();
        auto whole = partition.gather_full_parameters();
        for (const auto& item : models[r]->named_parameters()) view.whole[item.key()] = item.value().detach().clone();
      },
      kWorld);
  return views;
}

/// Builds the model of every rank with `build` (same seed each time) whole and inside a
/// PartitionedInit, partitions both, and checks that every rank holds the same bits.
void check_partitioned_build(const std::function<models::CausalLM()>& build) {
  std::vector<models::CausalLM> whole_models, partitioned_models;
  std::vector<std::shared_ptr<models::PartitionedLayers>> built;
  int64_t layer_numel = 0;
  for (int rank = 0; rank < kWorld; ++rank) {
    torch::manual_seed(17);
    whole_models.push_back(build());
    torch::manual_seed(17);
    models::PartitionedInit scope(rank, kWorld);
    partitioned_models.push_back(build());
    built.push_back(scope.layers());
  }
  for (const auto& item : whole_models.front()->named_parameters())
    if (models::decoder_layer_of(item.key())) layer_numel += item.value().numel();
  for (int rank = 0; rank < kWorld; ++rank) {
    INFO("rank " << rank);
    // Built: the layers are placeholders and a rank holds about 1/N of their values.
    for (const auto& item : partitioned_models[static_cast<size_t>(rank)]->named_parameters()) {
      INFO(item.key());
      if (models::decoder_layer_of(item.key()) && item.key().find("lora_") == std::string::npos)
        CHECK(item.value().numel() == 0);
    }
    CHECK(built[static_cast<size_t>(rank)]->held_bytes() <= 4 * (layer_numel / kWorld + 16));  // fp32 as built
  }

  const auto expected = partition_ranks(whole_models, std::vector<std::shared_ptr<models::PartitionedLayers>>(kWorld));
  const auto seen = partition_ranks(partitioned_models, built);
  for (int rank = 0; rank < kWorld; ++rank) {
    INFO("rank " << rank);
    const auto& a = seen[static_cast<size_t>(rank)];
    const auto& b = expected[static_cast<size_t>(rank)];
    CHECK(built[static_cast<size_t>(rank)]->held_bytes() == 0);  // the partition took the values
    CHECK(a.resident == b.resident);
    REQUIRE(a.chunks.size() == b.chunks.size());
    for (size_t i = 0; i < a.chunks.size(); ++i) CHECK(torch::equal(a.chunks[i], b.chunks[i]));
    REQUIRE(a.whole.size() == b.whole.size());
    for (const auto& [name, value] : b.whole) {
      INFO(name);
      CHECK(torch::equal(a.whole.at(name), value));
    }
  }
}

}  // namespace

TEST_CASE("engine: a model built partitioned (zero.Init) holds the chunks of the same seed's whole model",
          "[engine][zero3]") {
  test::OneIntraOpThread one_thread;
  for (const std::string family : {"opt", "gpt2", "llama"}) {
    INFO(family);
    check_partitioned_build([&] { return models::make_causal_lm(test::tiny_config(family)); });
  }
}

TEST_CASE("engine: a model built partitioned takes LoRA, value heads and frozen bf16 linears as a whole one",
          "[engine][zero3]") {
  test::OneIntraOpThread one_thread;
  SECTION("LoRA adapters on a frozen base (they draw random numbers after the layers)") {
    check_partitioned_build([] {
      auto model = models::make_causal_lm(test::tiny_config("opt"));
      models::LoraOptions lora;
      lora.rank = 3;
      models::apply_lora(*model, lora);
      models::only_optimize_lora(*model);
      return model;
    });
  }
  SECTION("a frozen reward model with a value head, its linear weights kept in bf16") {
    check_partitioned_build([] {
      auto model = models::make_causal_lm(test::tiny_config("llama"));
      model->add_value_head();
      for (auto& p : model->parameters()) p.set_requires_grad(false);
      models::store_frozen_linears_in(*model, torch::kBFloat16);
      return model;
    });
  }
  SECTION("in float64") {
    check_partitioned_build([] {
      auto model = models::make_causal_lm(test::tiny_config("gpt2"));
      model->to(torch::kFloat64);
      return model;
    });
  }
}

TEST_CASE("engine: a model loaded partitioned reads its chunks from the checkpoint, as the whole model has them",
          "[engine][zero3]") {
  test::OneIntraOpThread one_thread;
  for (const std::string fixture : {"opt", "gpt2", "llama", "opt_postln"}) {
    INFO(fixture);
    check_partitioned_build([&] {
      models::LoadOptions load;
      load.value_head = true;  // the checkpoint has none: a fresh one, drawn after the layers
      return models::load_pretrained(test::fixture_dir(fixture), load);
    });
  }
}

TEST_CASE("engine: a partitioned build is refused where it cannot be used", "[engine][zero3]") {
  engine::Zero3Collectives solo;
  solo.all_gather = [](const torch::Tensor& chunk, torch::Tensor& flat) { flat.copy_(chunk); };
  solo.reduce_scatter_sum = [](const torch::Tensor& flat, torch::Tensor& chunk) { chunk.copy_(flat); };
  solo.all_reduce_sum = [](torch::Tensor&) {};
  solo.rank = 0;
  solo.world = 1;
  std::shared_ptr<models::PartitionedLayers> built;
  models::CausalLM model;
  {
    models::PartitionedInit scope(1, 2);
    CHECK_THROWS_WITH(models::PartitionedInit(0, 2), Catch::Contains("already open"));
    model = models::make_causal_lm(test::tiny_config("opt"));
    built = scope.layers();
  }
  CHECK_THROWS_WITH(models::PartitionedInit(2, 2), Catch::Contains("rank 2 is outside a world of 2"));
  CHECK_THROWS_WITH(engine::Zero3Partition(model, solo, built), Catch::Contains("built partitioned as rank 1 of 2"));
  CHECK_THROWS_WITH(engine::Zero3Partition(model, solo), Catch::Contains("placeholder of a partitioned build"));
}
