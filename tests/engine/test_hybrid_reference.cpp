// The reference policy: the actor's base with adapters off under LoRA (no duplicate
// weights), a frozen copy otherwise.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <future>

#include <troupe/common/error.hpp>
#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/engine/hybrid_memory.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>

#include "../models/model_fixtures.hpp"

using namespace troupe;

namespace {

/// One AdamW step that raises the log-probs of `ids`: moves whatever is trainable.
void train_one_step(models::CausalLMImpl& model, const torch::Tensor& ids, const torch::Tensor& mask) {
  std::vector<torch::Tensor> trainable;
  for (auto& p : model.parameters())
    if (p.requires_grad()) trainable.push_back(p);
  torch::optim::AdamW adamw(trainable, torch::optim::AdamWOptions(1e-2));
  model.train();
  (-engine::sequence_logprobs(model, ids, mask)).sum().backward();
  adamw.step();
}

}  // namespace

TEST_CASE("reference: with LoRA it shares the actor's base and equals the base model", "[engine][reference]") {
  const auto dir = test::fixture_dir("opt");
  auto actor = models::load_pretrained(dir);
  models::apply_lora(*actor, {4, 8.0, 0.0, "decoder.layers."});
  models::only_optimize_lora(*actor);
  engine::HybridEngine hybrid(actor, [] {
    engine::HybridEngineOptions o;
    o.log_switches = false;
    return o;
  }());
  engine::ReferencePolicy reference(actor, hybrid.model_mutex());
  REQUIRE(reference.kind() == engine::ReferenceKind::SharedBase);
  INFO(reference.reason());

  // Storage is shared: the reference's base weights are the actor's tensors.
  auto actor_params = actor->named_parameters();
  for (auto& item : reference.model()->named_parameters()) {
    INFO(item.key());
    CHECK(item.value().data_ptr() == actor_params[item.key()].data_ptr());
  }
  auto base = models::load_pretrained(dir);  // a separately loaded copy of the base
  CHECK(reference.saved_parameter_bytes() == engine::parameter_bytes(*base));
  CHECK(reference.own_parameter_bytes() == 0);
  CHECK_THAT(reference.memory_summary(), Catch::Contains("not duplicated"));

  auto expected = models::read_safetensors(dir / "expected.safetensors");
  auto ids = expected.at("forward_left.input_ids");
  auto mask = expected.at("forward_left.attention_mask");
  // Train the adapters so the actor moves away from its base.
  train_one_step(*actor, ids, mask);
  for (int step = 0; step < 2; ++step) train_one_step(*actor, ids, mask);

  base->eval();
  torch::Tensor base_logprobs;
  {
    torch::NoGradGuard no_grad;
    base_logprobs = engine::sequence_logprobs(*base, ids, mask);
  }
  auto actor_before = hybrid.score_logprobs(ids, mask);
  auto ref_logprobs = reference.logprobs(ids, mask);
  CHECK_FALSE(ref_logprobs.requires_grad());
  CHECK(torch::allclose(ref_logprobs, base_logprobs, 0, 1e-5));
  CHECK_FALSE(torch::allclose(actor_before, base_logprobs, 0, 1e-3));
  // The actor is unchanged by the reference's forward: adapters on, training mode.
  CHECK(actor->is_training());
  CHECK(torch::allclose(hybrid.score_logprobs(ids, mask), actor_before, 0, 0));

  // An engine training step holds the lock the reference takes: they cannot overlap.
  torch::optim::AdamW adamw(std::vector<torch::Tensor>{}, torch::optim::AdamWOptions(1e-2));
  for (auto& p : actor->parameters())
    if (p.requires_grad()) adamw.add_param_group(torch::optim::OptimizerParamGroup({p}));
  auto lora_b = actor->named_parameters()["model.decoder.layers.0.self_attn.q_proj.lora_B"].detach().clone();
  bool locked_during_step = false;
  auto loss = hybrid.train_step(adamw, [&](models::CausalLMImpl& model) {
    // Asked from another thread: try_lock by the owner would be undefined.
    locked_during_step = !std::async(std::launch::async, [&] {
                            const bool got = hybrid.model_mutex()->try_lock();
                            if (got) hybrid.model_mutex()->unlock();
                            return got;
                          }).get();
    return -engine::sequence_logprobs(model, ids, mask).sum();
  });
  CHECK(locked_during_step);
  CHECK(loss.numel() == 1);
  CHECK_FALSE(loss.requires_grad());
  CHECK_FALSE(torch::equal(actor->named_parameters()["model.decoder.layers.0.self_attn.q_proj.lora_B"], lora_b));
  CHECK(torch::allclose(reference.logprobs(ids, mask), base_logprobs, 0, 1e-5));

  // Scoring while the adapters are fused (mid-generation) is refused.
  models::fuse_lora(*actor);
  CHECK_THROWS_AS(reference.logprobs(ids, mask), Error);
  models::unfuse_lora(*actor);
  // So is a base that became trainable: the reference would drift.
  actor->named_parameters()["model.decoder.layers.0.fc1.weight"].set_requires_grad(true);
  CHECK_THROWS_AS(reference.logprobs(ids, mask), Error);
}

TEST_CASE("reference: without LoRA it is a frozen copy that stays put when the actor trains", "[engine][reference]") {
  for (std::string family : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(5);
      auto actor = models::make_causal_lm(test::tiny_config(family));
      engine::ReferencePolicy reference(actor);
      REQUIRE(reference.kind() == engine::ReferenceKind::FrozenCopy);
      CHECK(reference.saved_parameter_bytes() == 0);
      CHECK(reference.own_parameter_bytes() == engine::parameter_bytes(*actor));
      auto actor_params = actor->named_parameters();
      for (auto& item : reference.model()->named_parameters()) {
        INFO(item.key());
        CHECK_FALSE(item.value().requires_grad());
        CHECK(item.value().data_ptr() != actor_params[item.key()].data_ptr());
        CHECK(torch::equal(item.value(), actor_params[item.key()]));
      }

      auto ids = torch::randint(3, 50, {2, 6}, torch::kLong);
      auto mask = torch::ones({2, 6}, torch::kLong);
      actor->eval();
      torch::Tensor actor_logprobs;
      {
        torch::NoGradGuard no_grad;
        actor_logprobs = engine::sequence_logprobs(*actor, ids, mask);
      }
      auto before = reference.logprobs(ids, mask);
      CHECK(torch::allclose(before, actor_logprobs, 0, 1e-6));

      train_one_step(*actor, ids, mask);
      actor->eval();
      torch::NoGradGuard no_grad;
      CHECK_FALSE(torch::allclose(engine::sequence_logprobs(*actor, ids, mask), actor_logprobs, 0, 1e-4));
      CHECK(torch::equal(reference.logprobs(ids, mask), before));
    }
  }
}

TEST_CASE("reference: LoRA with a trainable base or trained adapters gets a copy of the actor as it is",
          "[engine][reference]") {
  torch::manual_seed(6);
  auto actor = models::make_causal_lm(test::tiny_config("gpt2"));
  models::apply_lora(*actor, {4, 8.0, 0.0, ""});
  auto ids = torch::randint(3, 50, {2, 6}, torch::kLong);
  auto mask = torch::ones({2, 6}, torch::kLong);

  SECTION("base trainable") {
    engine::ReferencePolicy reference(actor);
    CHECK(reference.kind() == engine::ReferenceKind::FrozenCopy);
    CHECK_THAT(reference.reason(), Catch::Contains("base weights train"));
  }
  SECTION("adapters already trained: folded into the copy") {
    models::only_optimize_lora(*actor);
    {
      torch::NoGradGuard no_grad;
      for (auto& [name, linear] : actor->linear_layers())
        if (linear->has_lora()) linear->lora_B.normal_(0, 0.5);
    }
    engine::ReferencePolicy reference(actor);
    CHECK(reference.kind() == engine::ReferenceKind::FrozenCopy);
    CHECK_THAT(reference.reason(), Catch::Contains("already trained"));
    actor->eval();
    torch::NoGradGuard no_grad;
    CHECK(torch::allclose(reference.logprobs(ids, mask), engine::sequence_logprobs(*actor, ids, mask), 1e-5, 1e-5));
  }
}

TEST_CASE("reference: a frozen copy can be offloaded; a shared base stays with the actor", "[engine][reference]") {
  torch::manual_seed(6);
  auto actor = models::make_causal_lm(test::tiny_config("llama"));
  const auto device = torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  actor->to(device);
  engine::ReferencePolicy copy(actor);
  auto ids = torch::randint(3, 50, {2, 6}, torch::kLong).to(device);
  auto mask = torch::ones({2, 6}, torch::kLong).to(device);
  auto before = copy.logprobs(ids, mask);
  REQUIRE(copy.offload_to(torch::kCPU));
  CHECK(copy.model()->parameters().front().device().is_cpu());
  auto offloaded = copy.logprobs(ids, mask);
  CHECK(offloaded.device() == ids.device());  // the result comes back beside the inputs
  CHECK(torch::allclose(offloaded, before, 1e-5, 1e-5));

  models::LoraOptions lora;
  lora.rank = 2;
  models::apply_lora(*actor, lora);
  models::only_optimize_lora(*actor);
  engine::ReferencePolicy shared(actor);
  REQUIRE(shared.kind() == engine::ReferenceKind::SharedBase);
  CHECK_FALSE(shared.offload_to(torch::kCPU));
  CHECK(actor->parameters().front().device() == device);
}

TEST_CASE("reference: in a bf16 run the copy keeps bf16 linears and scores as the actor under autocast",
          "[engine][reference][bf16]") {
  auto actor = models::load_pretrained(test::fixture_dir("opt"));  // no LoRA: a copy
  engine::ReferencePolicy fp32_reference(actor);
  engine::ReferencePolicy reference(actor, nullptr, torch::kBFloat16);
  REQUIRE(reference.kind() == engine::ReferenceKind::FrozenCopy);
  CHECK(reference.own_parameter_bytes() < fp32_reference.own_parameter_bytes());

  const auto ids = torch::randint(3, 50, {2, 9}, torch::kLong);
  const auto mask = torch::ones_like(ids);
  torch::Tensor actor_logprobs;
  {
    torch::NoGradGuard no_grad;
    engine::AutocastScope autocast(torch::kCPU, torch::kBFloat16);  // as the policy role scores
    actor->eval();
    actor_logprobs = engine::sequence_logprobs(*actor, ids, mask);  // (B, T-1)
  }
  // At the start of step 3 the KL is exactly zero, as with fp32 weights and autocast.
  CHECK(torch::equal(reference.logprobs(ids, mask), actor_logprobs));
  CHECK_FALSE(torch::equal(fp32_reference.logprobs(ids, mask), actor_logprobs));  // fp32 differs from bf16
}
