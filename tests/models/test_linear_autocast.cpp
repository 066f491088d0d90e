// A trained linear layer under bf16 autocast keeps its fp32 weight for the backward and
// casts it again there (models/src/recast_linear.hpp): its output and gradients must
// be autocast's own, the product of torch's linear on the same tensors.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <troupe/models/linear.hpp>

#include "bf16_autocast.hpp"

using namespace troupe;

namespace {

double max_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace

TEST_CASE("models: a trained linear layer under bf16 autocast computes as autocast's linear", "[models][bf16]") {
  for (const bool transposed : {false, true}) {
    for (const bool bias : {false, true}) {
      DYNAMIC_SECTION((transposed ? "weight (in, out)" : "weight (out, in)") << (bias ? ", bias" : "")) {
        torch::manual_seed(3);
        models::Linear layer(models::LinearOptions(48, 40).bias(bias).transposed(transposed));
        const auto x0 = torch::randn({2, 9, 48});  // (B, T, in)
        const auto upstream = torch::randn({2, 9, 40});  // (B, T, out): d loss / d y

        auto x = x0.clone().requires_grad_();
        torch::Tensor y;
        {
          test::Bf16Autocast autocast;
          y = layer->forward(x);
        }
        y.backward(upstream.to(y.scalar_type()));

        // The reference: torch's linear under autocast on copies of the same tensors.
        auto weight = layer->weight.detach().clone().requires_grad_();
        auto reference_bias = bias ? layer->bias.detach().clone().requires_grad_() : torch::Tensor();
        auto x_reference = x0.clone().requires_grad_();
        torch::Tensor expected;
        {
          test::Bf16Autocast autocast;
          expected = torch::nn::functional::linear(x_reference, transposed ? weight.t() : weight, reference_bias);
        }
        expected.backward(upstream.to(expected.scalar_type()));

        CHECK(y.scalar_type() == torch::kBFloat16);
        CHECK(y.scalar_type() == expected.scalar_type());
        CHECK(max_difference(y, expected) == 0.0);
        REQUIRE(x.grad().defined());
        CHECK(x.grad().scalar_type() == torch::kFloat32);
        CHECK(max_difference(x.grad(), x_reference.grad()) <= 1e-6);
        REQUIRE(layer->weight.grad().defined());
        CHECK(layer->weight.grad().scalar_type() == torch::kFloat32);
        CHECK(max_difference(layer->weight.grad(), weight.grad()) <= 1e-6);
        if (bias) CHECK(max_difference(layer->bias.grad(), reference_bias.grad()) <= 1e-6);
      }
    }
  }
}
