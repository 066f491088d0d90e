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
