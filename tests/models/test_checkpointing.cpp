#include <map>
#include <string>
#include <unordered_set>

#include <catch2/catch.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/models/causal_lm.hpp>
#include <troupe/models/kv_cache.hpp>
#include <troupe/models/lora.hpp>

#include "model_fixtures.hpp"
#include "autograd_graph.hpp"

using namespace troupe;
using troupe::test::count_checkpoints;

namespace {

const char* const kFamilies[] = {"opt", "gpt2", "llama"};

/// Left-padded ids (B, T) and their mask, so the captured attention mask matters.
struct Batch {
  torch::Tensor ids;   // (B, T)
  torch::Tensor mask;  // (B, T)
};

Batch make_batch() {
  torch::manual_seed(11);
  auto ids = torch::randint(3, 50, {3, 7}, torch::kLong);
  auto mask = torch::ones({3, 7}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(0, 2)}, 0);
  mask.index_put_({2, torch::indexing::Slice(0, 4)}, 0);
  return {ids, mask};
}

struct Step {
  torch::Tensor loss;
  std::map<std::string, torch::Tensor> grads;  // by parameter name; only trainable ones
  torch::Tensor rng_after;                     // a draw after the backward: where the generator was left
  int checkpoints = 0;
};

/// One training step's loss and gradients from the same seed, with checkpointing on or off.
Step train_step(models::CausalLMImpl& model, const Batch& batch, bool checkpointing) {
  model.set_gradient_checkpointing(checkpointing);
  model.train();
  model.zero_grad();
  torch::manual_seed(5);
  auto logits = model.forward(batch.ids, batch.mask);  // (B, T, V)
  auto targets = batch.ids.roll(-1, 1);
  auto loss = torch::nn::functional::cross_entropy(logits.flatten(0, 1), targets.flatten());
  Step step;
  step.checkpoints = count_checkpoints(loss);
  loss.backward();
  step.loss = loss.detach();
  step.rng_after = torch::rand({4}, batch.ids.device());
  for (const auto& p : model.named_parameters()) {
    if (p.value().requires_grad() && p.value().grad().defined()) step.grads[p.key()] = p.value().grad().clone();
  }
  return step;
}

/// Bitwise by default: on the CPU the recomputation runs the same kernels in the same order.
void check_same_step(const Step& plain, const Step& checkpointed, int64_t layers, double rtol = 0,
                     double atol = 0) {
  CHECK(plain.checkpoints == 0);
  CHECK(checkpointed.checkpoints == layers);
  CHECK(torch::allclose(checkpointed.loss, plain.loss, rtol, atol));
  CHECK(torch::equal(checkpointed.rng_after, plain.rng_after));
  REQUIRE(checkpointed.grads.size() == plain.grads.size());
  for (const auto& [name, grad] : plain.grads) {
    INFO(name);
    REQUIRE(checkpointed.grads.count(name) == 1);
    CHECK(torch::allclose(checkpointed.grads.at(name), grad, rtol, atol));
  }
}

/// Every parameter's gradient is non-zero somewhere (the comparison is not vacuous).
void check_all_nonzero(const Step& step) {
  for (const auto& [name, grad] : step.grads) {
    INFO(name);
    CHECK(grad.abs().sum().item<double>() > 0);
  }
}

}  // namespace

TEST_CASE("Checkpointing: without dropout, loss and gradients equal the plain pass", "[models][checkpointing]") {
  const auto batch = make_batch();
  for (std::string family : kFamilies) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(1);
      auto model = models::make_causal_lm(test::tiny_config(family));
      models::set_dropout(*model, 0.0);
      auto plain = train_step(*model, batch, false);
      auto checkpointed = train_step(*model, batch, true);
      CHECK(model->gradient_checkpointing());
      CHECK(plain.grads.size() == model->parameters().size());
      check_all_nonzero(plain);
      check_same_step(plain, checkpointed, model->config().num_layers);
    }
  }
}

TEST_CASE("Checkpointing: with dropout, the recomputation replays the same masks", "[models][checkpointing]") {
  const auto batch = make_batch();
  for (std::string family : kFamilies) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(1);
      auto model = models::make_causal_lm(test::tiny_config(family));
      models::set_dropout(*model, 0.1);
      auto plain = train_step(*model, batch, false);
      auto checkpointed = train_step(*model, batch, true);
      check_same_step(plain, checkpointed, model->config().num_layers);

      // Dropout was really on: another seed gives another loss.
      model->set_gradient_checkpointing(false);
      torch::manual_seed(6);
      torch::NoGradGuard no_grad;
      auto other = model->forward(batch.ids, batch.mask);
      torch::manual_seed(5);
      CHECK_FALSE(torch::allclose(other, model->forward(batch.ids, batch.mask)));
    }
  }
}

TEST_CASE("Checkpointing on CUDA: dropout masks replay from the device generator", "[gpu][models][checkpointing]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  auto batch = make_batch();
  batch = {batch.ids.cuda(), batch.mask.cuda()};
  for (std::string family : kFamilies) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(1);
      auto model = models::make_causal_lm(test::tiny_config(family));
      model->to(torch::kCUDA);
      models::set_dropout(*model, 0.1);
      auto plain = train_step(*model, batch, false);
      auto checkpointed = train_step(*model, batch, true);
      // Attention backward kernels on CUDA may sum in a different order.
      check_same_step(plain, checkpointed, model->config().num_layers, 1e-4, 1e-6);
    }
  }
}

TEST_CASE("Checkpointing: frozen inputs (LoRA only) still get the adapters' gradients", "[models][checkpointing]") {
  const auto batch = make_batch();
  for (std::string family : kFamilies) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(2);
      auto model = models::make_causal_lm(test::tiny_config(family));
      models::set_dropout(*model, 0.1);
      models::apply_lora(*model, {4, 8.0, 0.0, ""});
      {
        torch::NoGradGuard no_grad;
        for (auto& [name, linear] : model->linear_layers())
          if (linear->has_lora()) linear->lora_B.normal_(0, 0.5);
      }
      models::only_optimize_lora(*model);
      auto plain = train_step(*model, batch, false);
      auto checkpointed = train_step(*model, batch, true);
      CHECK_FALSE(plain.grads.empty());
      check_all_nonzero(plain);
      check_same_step(plain, checkpointed, model->config().num_layers);
    }
  }
}

TEST_CASE("Checkpointing: eval mode, no grad and a KV cache run the layers directly", "[models][checkpointing]") {
  const auto batch = make_batch();
  for (std::string family : kFamilies) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(1);
      auto model = models::make_causal_lm(test::tiny_config(family));
      model->eval();
      auto reference = model->forward(batch.ids, batch.mask).detach();
      model->set_gradient_checkpointing(true);

      auto in_eval = model->forward(batch.ids, batch.mask);
      CHECK(count_checkpoints(in_eval) == 0);
      CHECK(torch::equal(in_eval, reference));

      model->train();
      models::set_dropout(*model, 0.0);
      {
        torch::NoGradGuard no_grad;
        auto without_grad = model->forward(batch.ids, batch.mask);
        CHECK_FALSE(without_grad.requires_grad());
        CHECK(torch::equal(without_grad, reference));
      }

      models::KVCache cache(model->config(), 3, 7, torch::TensorOptions().dtype(torch::kFloat32));
      auto cached = model->forward(batch.ids, batch.mask, {}, &cache);
      CHECK(count_checkpoints(cached) == 0);
      CHECK(cache.length() == 7);
      CHECK(torch::allclose(cached, reference, 1e-5, 1e-6));

      auto checkpointed = model->forward(batch.ids, batch.mask);
      CHECK(count_checkpoints(checkpointed) == model->config().num_layers);
      CHECK(torch::equal(checkpointed, reference));
    }
  }
}

TEST_CASE("set_dropout changes every layer's training-mode dropout", "[models][checkpointing]") {
  const auto batch = make_batch();
  for (std::string family : kFamilies) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(1);
      auto model = models::make_causal_lm(test::tiny_config(family));
      torch::NoGradGuard no_grad;
      model->eval();
      auto reference = model->forward(batch.ids, batch.mask);

      model->train();
      models::set_dropout(*model, 0.0);
      CHECK(model->config().dropout == 0.0f);
      CHECK(torch::equal(model->forward(batch.ids, batch.mask), reference));

      models::set_dropout(*model, 0.3);
      CHECK(model->config().dropout == Approx(0.3));
      auto dropped = model->forward(batch.ids, batch.mask);
      CHECK_FALSE(torch::allclose(dropped, reference, 1e-3, 1e-3));

      model->eval();
      CHECK(torch::equal(model->forward(batch.ids, batch.mask), reference));
      CHECK_THROWS_AS(models::set_dropout(*model, 1.5), Error);
      CHECK_THROWS_AS(models::set_dropout(*model, -0.1), Error);
    }
  }
}
