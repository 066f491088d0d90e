#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/models/lora.hpp>

#include "model_fixtures.hpp"

using namespace troupe;

namespace {

/// Gives every adapter non-zero B so fusing changes the weights.
void perturb_adapters(models::CausalLMImpl& model) {
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : model.linear_layers())
    if (linear->has_lora()) linear->lora_B.normal_(0, 0.5);
}

}  // namespace

TEST_CASE("LoRA: fuse then unfuse restores the weights; fused output equals adapter output", "[models][lora]") {
  for (std::string family : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(3);
      auto model = models::make_causal_lm(test::tiny_config(family));
      model->eval();
      auto before = std::map<std::string, torch::Tensor>();
      for (auto& p : model->named_parameters()) before[p.key()] = p.value().detach().clone();

      models::apply_lora(*model, {4, 8.0, 0.0, ""});
      perturb_adapters(*model);
      auto ids = torch::randint(3, 50, {2, 6}, torch::kLong);
      torch::NoGradGuard no_grad;
      auto base = [&] {
        models::set_lora_enabled(*model, false);
        auto out = model->forward(ids);
        models::set_lora_enabled(*model, true);
        return out;
      }();
      auto with_adapters = model->forward(ids);
      models::fuse_lora(*model);
      auto fused = model->forward(ids);
      CHECK(torch::allclose(fused, with_adapters, 1e-5, 1e-5));
      CHECK_FALSE(torch::allclose(fused, base, 1e-3, 1e-3));
      models::unfuse_lora(*model);
      for (auto& p : model->named_parameters()) {
        if (!before.count(p.key())) continue;
        INFO(p.key());
        CHECK(torch::allclose(p.value(), before[p.key()], 0, 1e-6));
      }
      CHECK(torch::allclose(model->forward(ids), with_adapters, 1e-5, 1e-5));
    }
  }
}

TEST_CASE("LoRA: only adapters train; a filter that matches nothing is an error", "[models][lora]") {
  auto model = models::make_causal_lm(test::tiny_config("gpt2"));
  auto adapted = models::apply_lora(*model, {2, 1.0, 0.0, "h.0."});
  CHECK(adapted == std::vector<std::string>{"transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj",
                                            "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj"});
  models::only_optimize_lora(*model);
  for (auto& p : model->named_parameters()) {
    INFO(p.key());
    CHECK(p.value().requires_grad() == (p.key().find("lora_") != std::string::npos));
  }
  CHECK_THROWS_WITH(models::apply_lora(*model, {2, 1.0, 0.0, "decoder.layers."}),
                    Catch::Matchers::Contains("decoder.layers.") && Catch::Matchers::Contains("transformer.h.0"));
}
