/// Frozen linears kept in bf16 compute, under bf16 autocast, exactly what PyTorch's
/// autocast computes from the fp32 weights; LoRA adapters on such a base train with the
/// same gradients and merge at fp32 precision.
#include <catch2/catch.hpp>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <troupe/models/frozen_weights.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>

#include "bf16_autocast.hpp"
#include "model_fixtures.hpp"

using namespace troupe;

namespace {

/// A model and an identical copy (same seed).
std::pair<models::CausalLM, models::CausalLM> twins(const std::string& family, bool lora) {
  auto make = [&] {
    torch::manual_seed(11);
    auto m = models::make_causal_lm(test::tiny_config(family));
    models::set_dropout(*m, 0.0);  // the training pass below must be deterministic
    {
      torch::NoGradGuard no_grad;  // biases that are not zero, as trained models have
      for (auto& [name, linear] : m->linear_layers())
        if (linear->bias.defined()) linear->bias.normal_(0, 0.1);
    }
    if (lora) {
      models::apply_lora(*m, {4, 8.0, 0.0, ""});
      models::only_optimize_lora(*m);
      torch::NoGradGuard no_grad;
      for (auto& [name, linear] : m->linear_layers())
        if (linear->has_lora()) linear->lora_B.normal_(0, 0.5);  // adapters that change the output
    } else {
      for (auto& p : m->parameters()) p.set_requires_grad(false);
    }
    m->eval();
    return m;
  };
  return {make(), make()};
}

int64_t frozen_linear_bytes(models::CausalLMImpl& model) {
  int64_t bytes = 0;
  for (auto& [name, linear] : model.linear_layers()) {
    if (linear->options().tied_weight()) continue;
    bytes += linear->weight.numel() * 4;
  }
  return bytes;
}

}  // namespace

TEST_CASE("frozen weights: bf16 storage gives autocast's logits bit for bit at half the bytes", "[models][bf16]") {
  for (std::string family : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(family) {
      auto [fp32, narrowed] = twins(family, false);
      const int64_t linear_bytes = frozen_linear_bytes(*narrowed);
      CHECK(models::store_frozen_linears_in(*narrowed, torch::kBFloat16) == linear_bytes / 2);
      CHECK(models::store_frozen_linears_in(*narrowed, torch::kBFloat16) == 0);  // already narrowed
      // The embedding (and a head tied to it), the norms and the biases keep fp32.
      CHECK(narrowed->input_embedding_weight().scalar_type() == torch::kFloat32);

      const auto ids = torch::randint(3, 50, {2, 7}, torch::kLong);
      torch::NoGradGuard no_grad;
      torch::Tensor expected, got;
      {
        test::Bf16Autocast autocast;
        expected = fp32->forward(ids);  // PyTorch casts each fp32 weight to bf16
        got = narrowed->forward(ids);
      }
      REQUIRE(got.scalar_type() == expected.scalar_type());
      CHECK(torch::equal(got, expected));

      // Without autocast the narrowed layers cast their input and output: fp32 logits
      // near the fp32 model's.
      const auto reference = fp32->forward(ids);
      const auto outside = narrowed->forward(ids);
      CHECK(outside.scalar_type() == torch::kFloat32);
      CHECK(torch::allclose(outside, reference, 0.05, 0.05));
      CHECK_FALSE(torch::equal(outside, reference));  // it did compute in bf16
    }
  }
}

TEST_CASE("frozen weights: LoRA on a bf16 base trains as on the fp32 base and merges in fp32", "[models][bf16][lora]") {
  for (std::string family : {"opt", "gpt2"}) {
    DYNAMIC_SECTION(family) {
      auto [fp32, narrowed] = twins(family, true);
      CHECK(models::store_frozen_linears_in(*narrowed, torch::kBFloat16) > 0);
      for (auto& [name, linear] : narrowed->linear_layers()) {
        if (!linear->has_lora()) continue;
        CHECK(linear->weight.scalar_type() == torch::kBFloat16);
        CHECK(linear->lora_A.scalar_type() == torch::kFloat32);  // the adapters keep their fp32 masters
      }

      // One backward under autocast: the adapters' gradients are the same bits.
      const auto ids = torch::randint(3, 50, {2, 7}, torch::kLong);
      fp32->train();
      narrowed->train();
      {
        test::Bf16Autocast autocast;
        fp32->forward(ids).to(torch::kFloat32).logsumexp(-1).sum().backward();
        narrowed->forward(ids).to(torch::kFloat32).logsumexp(-1).sum().backward();
      }
      auto expected = fp32->named_parameters();
      int64_t compared = 0;
      for (auto& item : narrowed->named_parameters()) {
        if (!item.value().requires_grad()) continue;
        INFO(item.key());
        REQUIRE(item.value().grad().defined());
        CHECK(torch::equal(item.value().grad(), expected[item.key()].grad()));
        ++compared;
      }
      CHECK(compared > 0);

      // The merged weight is fp32: the bf16 base plus the fp32 delta, not rounded to bf16.
      for (auto& [name, linear] : narrowed->linear_layers()) {
        if (!linear->has_lora()) continue;
        auto merged = linear->effective_weight(true);
        REQUIRE(merged.scalar_type() == torch::kFloat32);
        auto base = linear->weight.to(torch::kFloat32);
        auto delta = linear->lora_delta();
        if (linear->options().transposed()) {
          base = base.t();
          delta = delta.t();
        }
        CHECK(torch::equal(merged, base + delta));
      }

      // A save writes the merged weights in fp32 and reloads to the same logits.
      const auto dir = test::scratch_dir("frozen_weights_save_" + family);
      models::save_pretrained(*narrowed, dir);
      auto saved = models::read_checkpoint(dir);
      for (auto& [name, tensor] : saved) {
        INFO(name);
        if (name.find("proj") != std::string::npos || name.find("attn") != std::string::npos ||
            name.find("fc") != std::string::npos || name.find("mlp") != std::string::npos)
          CHECK(tensor.scalar_type() == torch::kFloat32);
      }
      auto reloaded = models::load_pretrained(dir);
      reloaded->eval();
      narrowed->eval();
      torch::NoGradGuard no_grad;
      CHECK(torch::allclose(reloaded->forward(ids), narrowed->forward(ids), 0.05, 0.05));
    }
  }
}

