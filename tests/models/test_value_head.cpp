#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>

#include "model_fixtures.hpp"

using namespace troupe;

TEST_CASE("value head: one value per token, saved and loaded with the model", "[models][value_head]") {
  models::LoadOptions options;
  options.value_head = true;
  auto critic = models::load_pretrained(test::fixture_dir("opt_postln"), options);
  REQUIRE(critic->has_value_head());
  // OPT-350m style: the head reads the projected width, not the hidden size.
  CHECK(critic->v_head->weight.sizes() == torch::IntArrayRef{1, critic->config().word_embed_proj_dim});
  torch::NoGradGuard no_grad;
  critic->v_head->weight.normal_();
  auto ids = torch::randint(3, 100, {2, 7}, torch::kLong);
  auto values = critic->values(critic->hidden_states({ids}));
  CHECK(values.sizes() == torch::IntArrayRef{2, 7});

  auto dir = test::scratch_dir("critic");
  models::save_pretrained(*critic, dir);
  CHECK(models::read_checkpoint(dir).count("v_head.weight"));
  auto again = models::load_pretrained(dir, options);
  CHECK(torch::equal(again->v_head->weight, critic->v_head->weight));
  CHECK(torch::equal(again->values(again->hidden_states({ids})), values));
  // The same directory still loads as a plain language model.
  CHECK_NOTHROW(models::load_pretrained(dir));
}

TEST_CASE("bf16 and fp16 loads stay close to fp32", "[models][dtype]") {
  auto ref = models::load_pretrained(test::fixture_dir("llama"));
  torch::manual_seed(0);
  auto ids = torch::randint(3, 100, {2, 9}, torch::kLong);
  torch::NoGradGuard no_grad;
  auto want = ref->forward(ids);
  for (auto dtype : {torch::kBFloat16, torch::kFloat16}) {
    models::LoadOptions options;
    options.dtype = dtype;
    auto model = models::load_pretrained(test::fixture_dir("llama"), options);
    CHECK(model->input_embedding_weight().scalar_type() == dtype);
    auto got = model->forward(ids).to(torch::kFloat32);
    // Half precision keeps 2-3 significant digits and rounding compounds over the layers,
    // so compare the typical error with the typical logit, and the worst one loosely.
    CHECK(((got - want).abs().mean() / want.abs().mean()).item<double>() < 0.05);
    CHECK(((got - want).abs().max() / want.abs().max()).item<double>() < 0.15);
  }
}

TEST_CASE("a checkpoint that does not fit the config is rejected by name", "[models][errors]") {
  auto model = models::load_pretrained(test::fixture_dir("gpt2"));
  auto weights = models::read_checkpoint(test::fixture_dir("gpt2"));
  auto missing = weights;
  missing.erase("transformer.h.1.mlp.c_fc.weight");
  CHECK_THROWS_WITH(models::load_weights(*model, missing, "ckpt"),
                    Catch::Matchers::Contains("missing weight \"transformer.h.1.mlp.c_fc.weight\""));
  auto misshapen = weights;
  misshapen["transformer.wpe.weight"] = torch::zeros({3, 3});
  CHECK_THROWS_WITH(models::load_weights(*model, misshapen, "ckpt"),
                    Catch::Matchers::Contains("transformer.wpe.weight") && Catch::Matchers::Contains("shape"));
  auto extra = weights;
  extra["score.weight"] = torch::zeros({2, 2});
  CHECK_THROWS_WITH(models::load_weights(*model, extra, "ckpt"), Catch::Matchers::Contains("unexpected weight \"score.weight\""));
}
