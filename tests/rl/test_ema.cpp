/// EMA of named parameters: ema = beta * ema + (1 - beta) * theta, no autograd.
#include <troupe/rl/ema.hpp>

#include <troupe/common/error.hpp>

#include "rl_fixtures.hpp"

using namespace troupe;

TEST_CASE("EMA by hand with beta 0.992", "[ema][by_hand]") {
  torch::nn::Linear layer(torch::nn::LinearOptions(2, 1));
  {
    torch::NoGradGuard no_grad;
    layer->weight.fill_(1.0);
    layer->bias.fill_(0.0);
  }
  rl::Ema ema(layer->named_parameters());
  CHECK(ema.beta() == 0.992);
  {
    torch::NoGradGuard no_grad;
    layer->weight.fill_(2.0);
    layer->bias.fill_(-1.0);
  }
  ema.update(layer->named_parameters());
  // 0.992 * 1 + 0.008 * 2 = 1.008; 0.992 * 0 + 0.008 * -1 = -0.008
  CHECK_CLOSE(ema.averages()["weight"], torch::full({1, 2}, 1.008f), 1e-6);
  CHECK_CLOSE(ema.averages()["bias"], torch::full({1}, -0.008f), 1e-6);
  ema.update(layer->named_parameters());
  // 0.992 * 1.008 + 0.008 * 2 = 1.015936
  CHECK_CLOSE(ema.averages()["weight"], torch::full({1, 2}, 1.015936f), 1e-6);
  CHECK(ema.updates() == 2);
  CHECK_FALSE(ema.averages()["weight"].requires_grad());
  // The model itself is untouched by the average.
  CHECK(layer->weight.eq(2.0).all().item<bool>());

  torch::nn::Linear target(torch::nn::LinearOptions(2, 1));
  ema.copy_to(target->named_parameters());
  CHECK(torch::equal(target->weight.detach(), ema.averages()["weight"]));
}

TEST_CASE("EMA can keep a float32 average of bfloat16 parameters", "[ema]") {
  rl::NamedTensors params;
  params.insert("w", torch::ones({3}, torch::kBFloat16));
  rl::EmaOptions options;
  options.beta = 0.5;
  options.dtype = torch::kFloat;
  rl::Ema ema(params, options);
  CHECK(ema.averages()["w"].scalar_type() == torch::kFloat);
  params["w"].fill_(3.0);
  ema.update(params);
  CHECK_CLOSE(ema.averages()["w"], torch::full({3}, 2.0f), 0.0);
}

TEST_CASE("EMA rejects missing names, changed shapes and bad beta", "[ema]") {
  rl::NamedTensors params;
  params.insert("w", torch::ones({3}));
  rl::Ema ema(params);
  rl::NamedTensors renamed;
  renamed.insert("v", torch::ones({3}));
  CHECK_THROWS_WITH(ema.update(renamed), Catch::Contains("'w'"));
  rl::NamedTensors reshaped;
  reshaped.insert("w", torch::ones({4}));
  CHECK_THROWS_AS(ema.update(reshaped), troupe::Error);
  rl::EmaOptions bad;
  bad.beta = 1.5;
  CHECK_THROWS_AS(rl::Ema(params, bad), troupe::Error);
}

TEST_CASE("EMA of a model with a frozen base averages only the adapters, with the same result", "[ema][lora]") {
  // A LoRA layer as plain tensors: a frozen base weight and a trainable adapter.
  torch::manual_seed(7);
  rl::NamedTensors model;
  model.insert("layer.weight", torch::randn({64, 32}));                       // (out, in), frozen
  model.insert("layer.lora_A", torch::randn({4, 32}).requires_grad_());      // (r, in)
  model.insert("layer.lora_B", torch::randn({64, 4}).requires_grad_());      // (out, r)
  const auto base = model["layer.weight"].clone();
  rl::EmaOptions options;
  options.beta = 0.9;
  options.dtype = torch::kFloat32;
  rl::Ema lora_only(rl::trainable_parameters(model), options);
  rl::Ema full_copy(model, options);  // what the EMA kept before: every tensor

  CHECK(lora_only.averages().size() == 2);
  CHECK(lora_only.bytes() == (4 * 32 + 64 * 4) * 4);
  CHECK(full_copy.bytes() == (64 * 32 + 4 * 32 + 64 * 4) * 4);

  // Three updates of the adapters; by hand: e = beta * e + (1 - beta) * theta.
  auto expected_a = model["layer.lora_A"].detach().clone(), expected_b = model["layer.lora_B"].detach().clone();
  for (int step = 0; step < 3; ++step) {
    {
      torch::NoGradGuard no_grad;
      model["layer.lora_A"].add_(torch::randn({4, 32}));
      model["layer.lora_B"].add_(torch::randn({64, 4}));
    }
    lora_only.update(model);
    full_copy.update(model);
    expected_a = 0.9 * expected_a + 0.1 * model["layer.lora_A"].detach();
    expected_b = 0.9 * expected_b + 0.1 * model["layer.lora_B"].detach();
  }
  auto saved = [&](const rl::Ema& ema) {
    rl::NamedTensors copy;
    for (const auto& item : model) copy.insert(item.key(), item.value().detach().clone());
    ema.copy_to(copy);
    return copy;
  };
  auto from_lora_only = saved(lora_only), from_full_copy = saved(full_copy);
  CHECK(torch::equal(from_lora_only["layer.weight"], base));
  CHECK_CLOSE(from_lora_only["layer.lora_A"], expected_a, 1e-6);
  CHECK_CLOSE(from_lora_only["layer.lora_B"], expected_b, 1e-6);
  for (const auto& item : from_full_copy) {
    INFO(item.key());
    CHECK(torch::equal(from_lora_only[item.key()], item.value()));  // bit for bit the old result
  }
}
