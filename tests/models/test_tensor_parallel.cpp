// Tensor-parallel generation layout: ranks as threads, each with its slices of the
// weights, against transformers' logits and generations (the fixtures of
// tests/reference/make_model_fixtures.py).
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <future>
#include <troupe/models/generation.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>
#include <troupe/models/tensor_parallel.hpp>

#include "model_fixtures.hpp"
#include "thread_sum_group.hpp"

using namespace troupe;

namespace {

/// Runs `body(rank, model)` on `world` threads, each with its own copy of fixture
/// `name` in the tensor-parallel layout; returns each rank's result.
template <class Body>
auto on_ranks(const std::string& name, int world, Body body) {
  test::ThreadSumGroup group(world);
  using Result = decltype(body(0, std::declval<models::CausalLMImpl&>()));
  std::vector<std::future<Result>> ranks;
  for (int r = 0; r < world; ++r)
    ranks.push_back(std::async(std::launch::async, [&, r] {
      auto model = models::load_pretrained(test::fixture_dir(name));
      models::enter_tensor_parallel(*model, group.rank(r));
      return body(r, *model);
    }));
  std::vector<Result> results;
  for (auto& rank : ranks) results.push_back(rank.get());
  return results;
}

double max_masked_diff(const torch::Tensor& ours, const torch::Tensor& theirs, const torch::Tensor& mask) {
  auto real = (mask != 0).unsqueeze(-1).expand_as(ours);
  return (ours - theirs).abs().masked_select(real).max().item<double>();
}

}  // namespace

TEST_CASE("tensor-parallel logits equal transformers' on every rank", "[models][tensor_parallel]") {
  for (const auto& [name, world] :
       std::vector<std::pair<std::string, int>>{{"opt", 2}, {"opt_postln", 4}, {"gpt2", 2}, {"llama", 2}}) {
    DYNAMIC_SECTION(name << " over " << world << " ranks") {
      auto expected = models::read_safetensors(test::fixture_dir(name) / "expected.safetensors");
      const auto ids = expected.at("forward_left.input_ids");
      const auto mask = expected.at("forward_left.attention_mask");
      auto logits = on_ranks(name, world, [&](int, models::CausalLMImpl& model) {
        torch::NoGradGuard no_grad;
        return model.forward(ids, mask);
      });
      for (int r = 0; r < world; ++r) {
        INFO("rank " << r);
        CHECK(max_masked_diff(logits[static_cast<size_t>(r)], expected.at("forward_left.logits"), mask) < 1e-4);
        CHECK(torch::equal(logits[static_cast<size_t>(r)], logits[0]));  // the ranks agree bit for bit
      }
    }
  }
}

TEST_CASE("tensor-parallel greedy generation equals transformers' (KV cache holds 1/W of the heads)",
          "[models][tensor_parallel]") {
  for (const std::string name : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(name) {
      auto expected = models::read_safetensors(test::fixture_dir(name) / "expected.safetensors");
      const auto ids = expected.at("greedy.input_ids");
      const auto mask = expected.at("greedy.attention_mask");
      auto outputs = on_ranks(name, 2, [&](int, models::CausalLMImpl& model) {
        models::GenerationOptions options;
        options.max_new_tokens = 16;
        // generate() sizes its cache for the rank's 1/W of the key/value heads.
        return models::generate(model, ids, mask, options).sequences;
      });
      for (const auto& sequences : outputs) CHECK(torch::equal(sequences, expected.at("greedy.sequences")));
    }
  }
}

TEST_CASE("tensor-parallel slices keep unfused LoRA adapters exact and leave the model whole after",
          "[models][tensor_parallel]") {
  for (const std::string name : {"llama", "gpt2"}) {  // GPT-2: fused q|k|v, (in, out) storage
    DYNAMIC_SECTION(name) {
      torch::manual_seed(7);
      auto reference = models::load_pretrained(test::fixture_dir(name));
      for (auto& [name, linear] : reference->linear_layers()) {
        if (name == "lm_head") continue;
        linear->enable_lora(4, 8.0);
        torch::NoGradGuard no_grad;
        linear->lora_B.normal_(0, 0.05);  // a trained adapter, not the zero start
      }
      auto ids = torch::randint(3, 100, {2, 7});
      auto mask = torch::ones({2, 7}, torch::kLong);
      mask[1][0] = 0;
      torch::NoGradGuard no_grad;
      const auto want = reference->forward(ids, mask);

      test::ThreadSumGroup group(2);
      std::vector<models::CausalLM> copies;
      for (int r = 0; r < 2; ++r) {
        copies.push_back(models::load_pretrained(test::fixture_dir(name)));
        for (auto& [name, linear] : copies.back()->linear_layers())
          if (name != "lm_head") linear->enable_lora(4, 8.0);
        auto target = copies.back()->named_parameters();
        for (const auto& p : reference->named_parameters()) target[p.key()].copy_(p.value());
      }
      std::vector<std::future<torch::Tensor>> ranks;
      for (int r = 0; r < 2; ++r)
        ranks.push_back(std::async(std::launch::async, [&, r] {
          models::enter_tensor_parallel(*copies[static_cast<size_t>(r)], group.rank(r));
          return copies[static_cast<size_t>(r)]->forward(ids, mask);
        }));
      for (auto& rank : ranks)
        CHECK((rank.get() - want).abs().max().item<double>() < 1e-4);  // as whole layers vs transformers
      CHECK(group.all_reduces() == 2 * 2);  // two row-split layers per decoder layer, two layers

      models::leave_tensor_parallel(*copies[0]);
      CHECK(copies[0]->tensor_parallel_world() == 1);
      CHECK(torch::equal(copies[0]->forward(ids, mask), want));  // whole again, no all-reduce needed
    }
  }
}

TEST_CASE("tensor parallelism refuses what cannot be split, naming the field", "[models][tensor_parallel]") {
  auto llama = test::tiny_config("llama");  // 4 heads, 2 key/value heads, MLP 32
  REQUIRE_NOTHROW(models::check_tensor_parallel(llama, 2, "actor"));
  REQUIRE_THROWS_WITH(
      models::check_tensor_parallel(llama, 4, "actor"),
      Catch::Contains("actor: tensor parallelism over 4 ranks needs num_key_value_heads (2) divisible by 4"));
  REQUIRE_THROWS_WITH(models::check_tensor_parallel(test::tiny_config("opt"), 3, "actor"),
                      Catch::Contains("num_attention_heads (4) divisible by 3"));
  auto opt = models::make_causal_lm(test::tiny_config("opt"));
  test::ThreadSumGroup group(3);
  REQUIRE_THROWS_WITH(models::enter_tensor_parallel(*opt, group.rank(0)), Catch::Contains("num_attention_heads (4)"));
  CHECK(opt->tensor_parallel_world() == 1);

  CHECK(models::tensor_parallel_split("model.decoder.layers.1.self_attn.out_proj")->split ==
        models::LinearShard::Split::Row);
  CHECK(models::tensor_parallel_split("model.layers.0.mlp.up_proj")->split == models::LinearShard::Split::Column);
  CHECK(models::tensor_parallel_split("transformer.h.0.attn.c_attn")->fused_blocks == 3);
  CHECK(models::tensor_parallel_split("transformer.h.0.mlp.c_proj")->split == models::LinearShard::Split::Row);
  CHECK_FALSE(models::tensor_parallel_split("lm_head").has_value());
}
