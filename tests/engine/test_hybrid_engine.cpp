// The Hybrid Engine: generation in the inference layout (packed weights, LoRA folded
// in), the switch back to training, the KV cache kept or released, and the timings of each switch.
#include <catch2/catch.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <map>

#include <troupe/common/error.hpp>
#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>

#include "../models/model_fixtures.hpp"

using namespace troupe;

namespace {

/// A tiny random model of `family` with rank-4 adapters whose B is non-zero, so fusing
/// really changes the weights and the outputs.
models::CausalLM lora_model(const std::string& family, uint64_t seed = 7) {
  torch::manual_seed(seed);
  auto model = models::make_causal_lm(test::tiny_config(family));
  models::apply_lora(*model, {4, 8.0, 0.0, ""});
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : model->linear_layers())
    if (linear->has_lora()) linear->lora_B.normal_(0, 0.5);
  return model;
}

/// Left-padded prompts (3, 5) over the tiny vocabulary, with their mask.
std::pair<torch::Tensor, torch::Tensor> prompts(int64_t pad = 0) {
  auto mask = torch::tensor({0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1}, torch::kLong).view({3, 5});  // (B, T0)
  auto ids = torch::randint(3, 50, {3, 5}, torch::kLong).masked_fill(mask == 0, pad);                // (B, T0)
  return {ids, mask};
}

std::map<std::string, torch::Tensor> snapshot(models::CausalLMImpl& model) {
  std::map<std::string, torch::Tensor> out;
  for (auto& p : model.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

bool bitwise_equal(models::CausalLMImpl& model, const std::map<std::string, torch::Tensor>& before) {
  for (auto& p : model.named_parameters()) {
    if (!torch::equal(p.value().detach(), before.at(p.key()))) return false;
  }
  return true;
}

engine::HybridEngineOptions quiet(engine::HybridEngineOptions options = {}) {
  options.log_switches = false;
  return options;
}

}  // namespace

TEST_CASE("hybrid engine: generate equals models::generate on the model with adapters fused", "[engine][hybrid]") {
  for (std::string family : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(family) {
      auto model = lora_model(family);
      auto [ids, mask] = prompts();
      engine::HybridEngine hybrid(model, quiet());
      for (bool sample : {false, true}) {
        INFO("do_sample " << sample);
        models::GenerationOptions options;
        options.max_new_tokens = 8;
        options.do_sample = sample;
        options.top_k = 10;
        options.seed = 11;
        options.eos_token_ids = {49};  // rarely hit: the rows run long enough to compare
        auto ours = hybrid.generate(ids, mask, options);

        torch::NoGradGuard no_grad;
        models::fuse_lora(*model);
        model->eval();
        auto want = models::generate(*model, ids, mask, options);
        models::unfuse_lora(*model);
        model->train();
        CHECK(torch::equal(ours.sequences, want.sequences));
        CHECK(torch::equal(ours.attention_mask, want.attention_mask));
        CHECK(ours.prompt_length == 5);

        // The adapters matter: the base model's next-token logits differ.
        models::set_lora_enabled(*model, false);
        model->eval();
        auto base_logits = model->forward(ids, mask);
        models::set_lora_enabled(*model, true);
        auto lora_logits = model->forward(ids, mask);
        model->train();
        CHECK_FALSE(torch::allclose(base_logits, lora_logits, 1e-3, 1e-3));
      }
    }
  }
}

TEST_CASE("hybrid engine: greedy generations of the HF fixtures equal transformers'", "[engine][hybrid]") {
  for (std::string name : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(name) {
      auto model = models::load_pretrained(test::fixture_dir(name));
      auto expected = models::read_safetensors(test::fixture_dir(name) / "expected.safetensors");
      // Zero adapters change nothing, but they are folded into the packed copies.
      models::apply_lora(*model, {4, 1.0, 0.0, ""});
      engine::HybridEngine hybrid(model, quiet());
      models::GenerationOptions options;
      options.max_new_tokens = 16;
      auto out = hybrid.generate(expected.at("greedy.input_ids"), expected.at("greedy.attention_mask"), options);
      CHECK(torch::equal(out.sequences, expected.at("greedy.sequences")));
      CHECK(hybrid.last_timings().lora_layers > 0);
      CHECK(hybrid.last_timings().packed_layers > hybrid.last_timings().lora_layers);  // the LM head too
    }
  }
}

TEST_CASE("hybrid engine: generation from the training weights (no packed copy) equals transformers' and the packed path",
          "[engine][hybrid]") {
  engine::HybridEngineOptions unpacked;
  unpacked.pack_inference_weights = false;
  SECTION("greedy, the HF fixtures, adapters applied unfused") {
    for (std::string name : {"opt", "gpt2", "llama"}) {
      DYNAMIC_SECTION(name) {
        auto model = models::load_pretrained(test::fixture_dir(name));
        auto expected = models::read_safetensors(test::fixture_dir(name) / "expected.safetensors");
        models::apply_lora(*model, {4, 1.0, 0.0, ""});  // B = 0: the unfused adapter adds zero
        engine::HybridEngine hybrid(model, quiet(unpacked));
        models::GenerationOptions options;
        options.max_new_tokens = 16;
        auto out = hybrid.generate(expected.at("greedy.input_ids"), expected.at("greedy.attention_mask"), options);
        CHECK(torch::equal(out.sequences, expected.at("greedy.sequences")));
        CHECK(hybrid.last_timings().packed_layers == 0);
        CHECK(hybrid.last_timings().packed_bytes == 0);
        CHECK(hybrid.inference_weight_bytes() == 0);
      }
    }
  }
  SECTION("sampled, adapters that move the logits: the same tokens as the packed copies with them folded in") {
    for (std::string family : {"opt", "llama"}) {
      DYNAMIC_SECTION(family) {
        auto model = lora_model(family);
        auto before = snapshot(*model);
        auto [ids, mask] = prompts();
        models::GenerationOptions options;
        options.max_new_tokens = 8;
        options.do_sample = true;
        options.top_k = 10;
        options.seed = 5;
        options.eos_token_ids = {49};
        engine::HybridEngine from_training(model, quiet(unpacked));
        auto ours = from_training.generate(ids, mask, options);
        CHECK(from_training.last_timings().lora_layers == 0);  // nothing folded
        engine::HybridEngine packed(model, quiet());
        auto want = packed.generate(ids, mask, options);
        CHECK(packed.last_timings().lora_layers > 0);
        CHECK(torch::equal(ours.sequences, want.sequences));
        CHECK(torch::equal(ours.attention_mask, want.attention_mask));
        CHECK(bitwise_equal(*model, before));
        CHECK(model->is_training());
      }
    }
  }
}

TEST_CASE("hybrid engine: weights are bit-identical after generation and training mode is back", "[engine][hybrid]") {
  auto model = lora_model("llama");
  auto before = snapshot(*model);
  auto [ids, mask] = prompts();
  models::GenerationOptions options;
  options.max_new_tokens = 6;

  SECTION("the adapters are folded into packed copies, never into the training weights") {
    engine::HybridEngine hybrid(model, quiet());
    hybrid.generate(ids, mask, options);
    hybrid.generate(ids, mask, options);
    CHECK(bitwise_equal(*model, before));
    CHECK(hybrid.last_timings().lora_layers > 0);
    for (auto& [name, linear] : model->linear_layers()) CHECK_FALSE(linear->packed());  // detached after
  }
  SECTION("in bf16 too") {
    engine::HybridEngineOptions bf16;
    bf16.inference_dtype = torch::kBFloat16;
    engine::HybridEngine hybrid(model, quiet(bf16));
    hybrid.generate(ids, mask, options);
    CHECK(bitwise_equal(*model, before));
    CHECK(hybrid.inference_weight_bytes() > 0);
  }
  CHECK(model->is_training());
  for (auto& [name, linear] : model->linear_layers()) {
    INFO(name);
    CHECK_FALSE(linear->lora_fused());
    if (linear->has_lora()) CHECK(linear->lora_enabled());
  }
}

TEST_CASE("hybrid engine: generated tensors carry no graph and feed a training step", "[engine][hybrid]") {
  auto model = lora_model("opt");
  models::only_optimize_lora(*model);
  auto [ids, mask] = prompts(/*pad=*/1);
  engine::HybridEngine hybrid(model, quiet());
  models::GenerationOptions options;
  options.max_new_tokens = 5;
  auto out = hybrid.generate(ids, mask, options);
  CHECK(hybrid.mode() == engine::EngineMode::Training);
  for (const auto& t : {out.sequences, out.attention_mask}) {
    CHECK_FALSE(t.requires_grad());
    CHECK_FALSE(t.grad_fn());
    CHECK_FALSE(t.is_inference());
  }
  // The sequences are plain inputs: a differentiable forward on them backpropagates.
  auto logprobs = hybrid.train_logprobs(out.sequences, out.attention_mask);  // (B, T - 1)
  REQUIRE(logprobs.requires_grad());
  (-logprobs * out.attention_mask.narrow(1, 1, logprobs.size(1))).sum().backward();
  int64_t with_grad = 0;
  for (auto& [name, linear] : model->linear_layers())
    if (linear->has_lora() && linear->lora_A.grad().defined()) ++with_grad;
  CHECK(with_grad > 0);

  // Old log-probs: no graph, eval mode (no dropout), training mode back after.
  auto old = hybrid.score_logprobs(out.sequences, out.attention_mask);
  CHECK_FALSE(old.requires_grad());
  CHECK(model->is_training());
  model->eval();
  torch::NoGradGuard no_grad;
  CHECK(torch::allclose(old, engine::sequence_logprobs(*model, out.sequences, out.attention_mask), 0, 1e-6));
  model->train();
}

TEST_CASE("hybrid engine: the KV cache is kept and reused, or released", "[engine][hybrid]") {
  auto model = lora_model("llama");
  auto [ids, mask] = prompts();
  models::GenerationOptions options;
  options.max_new_tokens = 6;
  const auto& config = model->config();
  const int64_t expected_bytes = engine::kv_cache_bytes(config, 3, 5 + 6, torch::kFloat32);

  SECTION("kept") {
    engine::HybridEngine hybrid(model, quiet());
    CHECK(hybrid.inference_cache_bytes() == 0);
    auto first = hybrid.generate(ids, mask, options);
    CHECK(hybrid.inference_cache_bytes() == expected_bytes);
    CHECK_FALSE(hybrid.last_timings().cache_reused);
    CHECK_FALSE(hybrid.last_timings().cache_released);
    // Same batch, fewer positions: the kept cache serves, with the same tokens.
    options.max_new_tokens = 4;
    auto second = hybrid.generate(ids, mask, options);
    CHECK(hybrid.last_timings().cache_reused);
    CHECK(hybrid.inference_cache_bytes() == expected_bytes);
    CHECK(torch::equal(second.sequences, first.sequences.narrow(1, 0, second.sequences.size(1))));
    // A larger batch needs a new one.
    auto [ids2, mask2] = prompts();
    hybrid.generate(torch::cat({ids, ids2}), torch::cat({mask, mask2}), options);
    CHECK_FALSE(hybrid.last_timings().cache_reused);
    CHECK(hybrid.inference_cache_bytes() == engine::kv_cache_bytes(config, 6, 5 + 4, torch::kFloat32));
    CHECK(hybrid.inference_weight_bytes() > 0);  // kept for the next switch
    hybrid.release_inference_cache();
    CHECK(hybrid.inference_cache_bytes() == 0);
    CHECK(hybrid.inference_weight_bytes() == 0);
  }
  SECTION("released") {
    engine::HybridEngineOptions release;
    release.release_inference_cache = true;
    engine::HybridEngine hybrid(model, quiet(release));
    hybrid.generate(ids, mask, options);
    CHECK(hybrid.inference_cache_bytes() == 0);
    CHECK(hybrid.inference_weight_bytes() == 0);  // the packed weights go too
    CHECK(hybrid.last_timings().cache_released);
    CHECK(hybrid.last_timings().kv_cache_bytes == expected_bytes);
  }
}

TEST_CASE("hybrid engine: each switch is timed and logged", "[engine][hybrid]") {
  auto model = lora_model("gpt2");
  auto [ids, mask] = prompts();
  engine::HybridEngine hybrid(model, quiet());
  models::GenerationOptions options;
  options.max_new_tokens = 4;
  auto out = hybrid.generate(ids, mask, options);
  hybrid.generate(ids, mask, options);
  const auto& t = hybrid.last_timings();
  CHECK(t.enter_seconds > 0);
  CHECK(t.generate_seconds > 0);
  CHECK(t.leave_seconds > 0);
  CHECK(t.total_seconds() >= t.generate_seconds);
  CHECK(t.lora_layers == 8);    // 2 layers x (c_attn, c_proj, c_fc, mlp c_proj)
  CHECK(t.packed_layers == 9);  // and the LM head
  CHECK(t.packed_bytes > 0);
  CHECK(t.batch == 3);
  CHECK(t.prompt_length == 5);
  CHECK(t.new_tokens == out.sequences.size(1) - 5);
  CHECK(t.tokens_per_second() > 0);
  CHECK(hybrid.timing_history().size() == 2);
  auto line = t.log_line();
  CHECK_THAT(line, Catch::Contains("enter") && Catch::Contains("generate") && Catch::Contains("leave") &&
                       Catch::Contains("B=3") && Catch::Contains("reused"));
}

TEST_CASE("hybrid engine: a failing generation leaves the model as it was", "[engine][hybrid]") {
  auto model = lora_model("opt");
  auto before = snapshot(*model);
  auto [ids, mask] = prompts(1);
  engine::HybridEngine hybrid(model, quiet());
  models::GenerationOptions options;
  options.do_sample = true;
  options.temperature = -1;  // rejected by the sampler after the prefill ran fused
  CHECK_THROWS_AS(hybrid.generate(ids, mask, options), Error);
  CHECK(hybrid.mode() == engine::EngineMode::Training);
  CHECK(model->is_training());
  CHECK(bitwise_equal(*model, before));
  for (auto& [name, linear] : model->linear_layers()) CHECK_FALSE(linear->lora_fused());
  CHECK_THROWS(hybrid.generate(ids, mask.narrow(1, 0, 4), {}));
}

TEST_CASE("CUDA: releasing the inference cache hands its memory back to the device", "[gpu][engine][hybrid]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  const torch::Device cuda(torch::kCUDA, 0);
  auto model = lora_model("llama");
  model->to(cuda);
  auto [ids, mask] = prompts();
  ids = ids.repeat({256, 1}).to(cuda);  // (768, 5): a cache of a few MiB
  mask = mask.repeat({256, 1}).to(cuda);
  models::GenerationOptions options;
  options.max_new_tokens = 32;
  options.eos_token_ids = {-1};
  engine::HybridEngine hybrid(model, quiet());
  engine::reset_peak_memory(cuda);
  auto out = hybrid.generate(ids, mask, options);
  const auto kept = engine::device_memory_stats(cuda);
  REQUIRE(kept.has_value());
  CHECK(hybrid.inference_cache_bytes() == engine::kv_cache_bytes(model->config(), 768, 5 + 32, torch::kFloat32));
  CHECK(kept->peak_allocated_bytes >= hybrid.inference_cache_bytes());
  CHECK(kept->allocated_bytes >= hybrid.inference_cache_bytes());
  hybrid.release_inference_cache();
  const auto released = engine::device_memory_stats(cuda);
  CHECK(hybrid.inference_cache_bytes() == 0);
  CHECK(released->allocated_bytes <=
        kept->allocated_bytes - engine::kv_cache_bytes(model->config(), 768, 5 + 32, torch::kFloat32));
  CHECK(released->reserved_bytes < kept->reserved_bytes);
  CHECK(out.sequences.size(1) == 5 + 32);
}
