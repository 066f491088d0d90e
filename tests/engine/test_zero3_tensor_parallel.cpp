/// The Hybrid Engine's ZeRO-3 -> tensor-parallel reshard: four ZeRO stage 3 ranks as
/// threads, each building its tensor-parallel slice (of two) from the chunks. Checked
/// against cutting the whole weights of one unpartitioned model by hand (Megatron's
/// split, written out here per parameter name), and generation against one whole engine.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/engine/zero3.hpp>
#include <troupe/models/lora.hpp>

#include "../models/model_fixtures.hpp"
#include "../models/thread_sum_group.hpp"
#include "thread_collectives.hpp"
#include "zero3_fixtures.hpp"

using namespace troupe;

namespace {

constexpr int kRanks = 4;
constexpr int kTensorParallel = 2;

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The model of `family` with trained-looking LoRA adapters on every linear, the same on
/// every call: the OPT fixture, a tiny Llama (grouped-query attention) or a tiny GPT-2
/// (fused q|k|v stored as (in, out)).
models::CausalLM load_adapted(const std::string& family) {
  torch::manual_seed(33);
  auto model = family == "opt" ? test::load_opt() : models::make_causal_lm(test::tiny_config(family));
  models::set_dropout(*model, 0.0);
  models::apply_lora(*model, {4, 8.0, 0.0, ""});
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : model->linear_layers())
    if (linear->has_lora()) linear->lora_B.normal_(0, 0.5);
  return model;
}

/// Rank t's slice of `whole`, the parameter `name`, cut as Megatron does (independently
/// of the engine's tables): column-parallel layers by output feature, row-parallel ones
/// by input feature, GPT-2's c_attn in three blocks; adapters follow their weight.
torch::Tensor megatron_slice(const std::string& name, const torch::Tensor& whole, int world, int t) {
  auto cut = [&](int dim, int blocks) {
    const int64_t block = whole.size(dim) / blocks, k = block / world;
    std::vector<torch::Tensor> parts;
    for (int b = 0; b < blocks; ++b) parts.push_back(whole.narrow(dim, b * block + t * k, k));
    return torch::cat(parts, dim);
  };
  const bool column = name.find("q_proj.") != std::string::npos || name.find("k_proj.") != std::string::npos ||
                      name.find("v_proj.") != std::string::npos || name.find("fc1.") != std::string::npos ||
                      name.find("gate_proj.") != std::string::npos || name.find("up_proj.") != std::string::npos;
  const bool row = name.find("out_proj.") != std::string::npos || name.find("o_proj.") != std::string::npos ||
                   name.find("fc2.") != std::string::npos || name.find("down_proj.") != std::string::npos;
  const bool gpt2_qkv = name.find("c_attn.") != std::string::npos, gpt2_fc = name.find("c_fc.") != std::string::npos;
  const bool gpt2_proj = name.find("mlp.c_proj.") != std::string::npos || name.find("attn.c_proj.") != std::string::npos;
  if (column) {
    if (ends_with(name, ".weight") || ends_with(name, ".bias") || ends_with(name, ".lora_B")) return cut(0, 1);
  } else if (row) {
    if (ends_with(name, ".weight") || ends_with(name, ".lora_A")) return cut(1, 1);
  } else if (gpt2_qkv || gpt2_fc) {  // Conv1D: weight (in, out)
    const int blocks = gpt2_qkv ? 3 : 1;
    if (ends_with(name, ".weight")) return cut(1, blocks);
    if (ends_with(name, ".bias") || ends_with(name, ".lora_B")) return cut(0, blocks);
  } else if (gpt2_proj) {
    if (ends_with(name, ".weight")) return cut(0, 1);
    if (ends_with(name, ".lora_A")) return cut(1, 1);
  }
  return whole;
}

engine::TrainOptions train_options() {
  engine::TrainOptions options;
  options.optimizer.learning_rate = 1e-3;
  return options;
}

}  // namespace

TEST_CASE("engine: ZeRO-3 over 4 ranks reshards into tensor-parallel slices equal to cutting the whole weights",
          "[engine][zero3][tensor_parallel]") {
  // all_to_all_streams (packed and unpacked in pieces) where the collectives have it; the
  // last two runs have the packed all-to-all only, and no all-to-all collective (each
  // layer arrives whole and is cut).
  struct Run {
    std::string family;
    bool with_all_to_all, with_streams;
  };
  const std::vector<Run> runs{{"opt", true, true}, {"llama", true, true}, {"gpt2", true, true}, {"opt", true, false},
                              {"opt", false, false}};
  for (const auto& [family, with_all_to_all, with_streams] : runs) {
    DYNAMIC_SECTION(family << (with_streams ? "" : with_all_to_all ? ", packed all_to_all" : ", without all_to_all")) {
      std::map<std::string, torch::Tensor> whole;
      for (const auto& item : load_adapted(family)->named_parameters()) whole[item.key()] = item.value().detach().clone();
      // Built here, one after the other: the ranks' threads would race for the generator.
      std::vector<models::CausalLM> models;
      for (int rank = 0; rank < kRanks; ++rank) models.push_back(load_adapted(family));
      test::ThreadCollectives group(kRanks);
      // Catch's checks are not thread-safe: the ranks record, the main thread checks.
      std::vector<std::vector<std::string>> mismatches(kRanks);
      std::vector<int64_t> moved(kRanks), minimum(kRanks), whole_gather(kRanks), resident_change(kRanks);
      std::vector<int64_t> layer_elements_after(kRanks);
      test::run_ranks(
          [&](int rank) {
            auto model = models[static_cast<size_t>(rank)];
            engine::TrainEngine trainer(model, train_options());
            auto collectives = group.zero3(rank);
            if (!with_all_to_all) collectives.all_to_all = nullptr;
            if (!with_streams) collectives.all_to_all_streams = nullptr;
            trainer.set_zero3(collectives);
            auto& zero3 = *trainer.zero3();
            const int64_t resident = zero3.param_resident_bytes();
            const int t = rank % kTensorParallel;
            int64_t before = zero3.received_bytes();
            {
              auto slices = zero3.gather_tensor_parallel_slices({kTensorParallel, t, nullptr});
              moved[static_cast<size_t>(rank)] = zero3.received_bytes() - before;
              for (const auto& item : model->named_parameters()) {
                const auto expected = megatron_slice(item.key(), whole.at(item.key()), kTensorParallel, t);
                if (item.value().sizes() != expected.sizes() || !item.value().detach().equal(expected))  // bit for bit
                  mismatches[static_cast<size_t>(rank)].push_back(item.key());
              }
            }
            resident_change[static_cast<size_t>(rank)] = zero3.param_resident_bytes() - resident;
            for (const auto& item : model->named_parameters())  // the layers hold placeholders again
              if (item.key().find("layers.0.") != std::string::npos || item.key().find("h.0.") != std::string::npos)
                layer_elements_after[static_cast<size_t>(rank)] += item.value().numel();
            minimum[static_cast<size_t>(rank)] = zero3.tensor_parallel_minimum_bytes(kTensorParallel);
            before = zero3.received_bytes();
            { auto all = zero3.gather_full_parameters(); }
            whole_gather[static_cast<size_t>(rank)] = zero3.received_bytes() - before;
          },
          kRanks);
      for (int rank = 0; rank < kRanks; ++rank) {
        INFO(family << " rank " << rank);
        CHECK(mismatches[static_cast<size_t>(rank)] == std::vector<std::string>{});
        CHECK(resident_change[static_cast<size_t>(rank)] == 0);  // the chunks alone again
        CHECK(layer_elements_after[static_cast<size_t>(rank)] == 0);
        if (!with_all_to_all) {  // the fallback moves what a whole-model gather moves
          CHECK(moved[static_cast<size_t>(rank)] == whole_gather[static_cast<size_t>(rank)]);
          continue;
        }
        // Exactly the slice's bytes that other ranks hold: 3/8 of the layers here,
        // against 3/4 for the whole-model gather.
        CHECK(moved[static_cast<size_t>(rank)] == minimum[static_cast<size_t>(rank)]);
        CHECK(moved[static_cast<size_t>(rank)] > 0);
        CHECK(static_cast<double>(moved[static_cast<size_t>(rank)]) <
              0.6 * static_cast<double>(whole_gather[static_cast<size_t>(rank)]));
      }
    }
  }
}

TEST_CASE("engine: a ZeRO-3 actor generates tensor-parallel from its resharded slices as one whole engine does",
          "[engine][zero3][tensor_parallel]") {
  const auto ids = torch::tensor({{0, 0, 5, 17, 42}, {9, 8, 7, 6, 5}}, torch::kLong);  // (2, 5), left padded
  const auto mask = torch::tensor({{0, 0, 1, 1, 1}, {1, 1, 1, 1, 1}}, torch::kLong);
  models::GenerationOptions options;
  options.max_new_tokens = 6;
  for (const std::string family : {"opt", "llama"}) {
    DYNAMIC_SECTION(family) {
      test::OneIntraOpThread one_thread;
      engine::HybridEngineOptions quiet;
      quiet.log_switches = false;
      const auto expected = engine::HybridEngine(load_adapted(family), quiet).generate(ids, mask, options);
      std::vector<models::CausalLM> models;
      for (int rank = 0; rank < kRanks; ++rank) models.push_back(load_adapted(family));
      test::ThreadCollectives group(kRanks);
      std::vector<std::unique_ptr<test::ThreadSumGroup>> generation_groups;  // ranks {0, 1} and {2, 3}
      for (int g = 0; g < kRanks / kTensorParallel; ++g)
        generation_groups.push_back(std::make_unique<test::ThreadSumGroup>(kTensorParallel));
      std::vector<models::GenerationResult> got(kRanks);
      std::vector<int64_t> reshard_bytes(kRanks), minimum(kRanks), resident_change(kRanks), world_after(kRanks);
      test::run_ranks(
          [&](int rank) {
            auto model = models[static_cast<size_t>(rank)];
            engine::TrainEngine trainer(model, train_options());
            trainer.set_zero3(group.zero3(rank));
            const int64_t resident = trainer.zero3()->param_resident_bytes();
            engine::HybridEngine hybrid(model, quiet);
            hybrid.set_zero3(trainer.zero3());
            hybrid.set_tensor_parallel(
                generation_groups[static_cast<size_t>(rank / kTensorParallel)]->rank(rank % kTensorParallel));
            got[static_cast<size_t>(rank)] = hybrid.generate(ids, mask, options);  // each rank its two rows
            reshard_bytes[static_cast<size_t>(rank)] = hybrid.last_timings().reshard_bytes;
            minimum[static_cast<size_t>(rank)] = trainer.zero3()->tensor_parallel_minimum_bytes(kTensorParallel);
            resident_change[static_cast<size_t>(rank)] = trainer.zero3()->param_resident_bytes() - resident;
            world_after[static_cast<size_t>(rank)] = model->tensor_parallel_world();
          },
          kRanks);
      for (int rank = 0; rank < kRanks; ++rank) {
        INFO(family << " rank " << rank);
        CHECK(got[static_cast<size_t>(rank)].sequences.equal(expected.sequences));
        CHECK(got[static_cast<size_t>(rank)].attention_mask.equal(expected.attention_mask));
        CHECK(reshard_bytes[static_cast<size_t>(rank)] == minimum[static_cast<size_t>(rank)]);
        CHECK(resident_change[static_cast<size_t>(rank)] == 0);
        CHECK(world_after[static_cast<size_t>(rank)] == 1);  // whole layers again for training
      }
    }
  }
}
