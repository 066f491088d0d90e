/// LoRA adapters written as a PEFT directory: names, shapes and config fields as peft
/// writes them; tests/reference/check_peft_adapter.py has peft apply them to the base.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/peft_adapter.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>
#include <troupe/models/tokenizer.hpp>

#include "model_fixtures.hpp"

using namespace troupe;

namespace {

/// A fixture model with rank-4 adapters (alpha 8: scale 2, so a wrong scale shows),
/// only the adapters trainable, B non-zero so the adapters change the output.
models::CausalLM lora_fixture(const std::string& family, const std::string& filter = "") {
  auto model = models::load_pretrained(test::fixture_dir(family));
  torch::manual_seed(9);
  models::apply_lora(*model, {4, 8.0, 0.0, filter});
  models::only_optimize_lora(*model);
  torch::NoGradGuard no_grad;
  for (auto& [name, linear] : model->linear_layers())
    if (linear->has_lora()) linear->lora_B.normal_(0, 0.05);
  return model;
}

}  // namespace

TEST_CASE("PEFT adapter: peft's key names, shapes and config", "[models][lora][peft]") {
  for (std::string family : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(family) {
      auto model = lora_fixture(family);
      REQUIRE(models::peft_exportable(*model));
      const auto dir = test::scratch_dir("peft_adapter_" + family);
      models::save_peft_adapter(*model, dir);
      const auto config = nlohmann::json::parse(read_file(dir / "adapter_config.json"));
      CHECK(config.at("peft_type") == "LORA");
      CHECK(config.at("task_type") == "CAUSAL_LM");
      CHECK(config.at("r") == 4);
      CHECK(config.at("lora_alpha") == 8);
      CHECK(config.at("bias") == "none");
      CHECK(config.at("fan_in_fan_out") == (family == "gpt2"));  // Conv1D stores (in, out)
      CHECK(config.at("base_model_name_or_path") == model->name_or_path());
      CHECK(std::filesystem::equivalent(config.at("base_model_name_or_path").get<std::string>(), test::fixture_dir(family)));

      const auto tensors = models::read_safetensors(dir / "adapter_model.safetensors");
      size_t adapted = 0;
      for (auto& [name, linear] : model->linear_layers()) {
        if (!linear->has_lora()) continue;
        ++adapted;
        INFO(name);
        const auto a = tensors.find("base_model.model." + name + ".lora_A.weight");
        const auto b = tensors.find("base_model.model." + name + ".lora_B.weight");
        REQUIRE(a != tensors.end());
        REQUIRE(b != tensors.end());
        CHECK(torch::equal(a->second, linear->lora_A.detach()));  // (r, in)
        CHECK(torch::equal(b->second, linear->lora_B.detach()));  // (out, r)
      }
      CHECK(tensors.size() == 2 * adapted);
      CHECK(config.at("target_modules").size() == adapted);
    }
  }
  SECTION("the OPT names peft expects") {
    auto model = lora_fixture("opt", "self_attn.q_proj");
    const auto dir = test::scratch_dir("peft_adapter_opt_q");
    models::save_peft_adapter(*model, dir);
    const auto tensors = models::read_safetensors(dir / "adapter_model.safetensors");
    CHECK(tensors.count("base_model.model.model.decoder.layers.0.self_attn.q_proj.lora_A.weight") == 1);
    const auto config = nlohmann::json::parse(read_file(dir / "adapter_config.json"));
    CHECK(config.at("target_modules").at(0) == "model.decoder.layers.0.self_attn.q_proj");
  }
}

TEST_CASE("PEFT adapter: refused, with the reason, where peft could not rebuild the model", "[models][lora][peft]") {
  const auto dir = test::scratch_dir("peft_adapter_refused");
  auto plain = models::load_pretrained(test::fixture_dir("llama"));
  CHECK_FALSE(models::peft_exportable(*plain));
  CHECK_THROWS_WITH(models::save_peft_adapter(*plain, dir), Catch::Contains("no LoRA adapters"));

  auto whole = models::load_pretrained(test::fixture_dir("llama"));
  models::apply_lora(*whole, {4, 8.0, 0.0, ""});  // without only_optimize_lora: the base trains too
  CHECK_THROWS_WITH(models::save_peft_adapter(*whole, dir), Catch::Contains("trains besides the adapters"));

  auto built = models::make_causal_lm(test::tiny_config("llama"));  // no directory to name as the base
  models::apply_lora(*built, {4, 8.0, 0.0, ""});
  models::only_optimize_lora(*built);
  CHECK_THROWS_WITH(models::save_peft_adapter(*built, dir), Catch::Contains("no base to name"));

  auto critic = lora_fixture("llama");
  critic->add_value_head();
  models::only_optimize_lora(*critic);
  CHECK_THROWS_WITH(models::save_peft_adapter(*critic, dir), Catch::Contains("value head"));
}

// Hidden from the default run: ctest calls it to write, for each family, the fused
// model and its adapter; tests/reference/check_peft_adapter.py then has peft apply the
// adapter to the fixture base and compares logits with transformers on the fused model.
TEST_CASE("write LoRA models fused and as PEFT adapters for peft to load", "[.peft_export]") {
  for (std::string family : {"opt", "gpt2", "llama"}) {
    auto model = lora_fixture(family);
    const auto dir = test::scratch_dir("troupe_peft_" + family);
    models::save_pretrained(*model, dir);
    models::load_tokenizer(test::fixture_dir(family))->save(dir);
    models::save_peft_adapter(*model, dir / models::kPeftAdapterDir);
  }
}
