/// --async_rollout's rollout copy: it takes only the actor's trainable tensors (a LoRA
/// actor's adapters), generates what the actor generates with the weights it was handed,
/// and labels each batch with their version.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/rl/algorithm_registry.hpp>

#include "async_rollout.hpp"
#include "step3_roles.hpp"

#include "../models/model_fixtures.hpp"

using namespace troupe;

namespace {

/// A LoRA policy on the saved tiny Llama at `dir`, adapters drawn from `seed`.
std::shared_ptr<actors::PolicyRole> lora_policy(const std::filesystem::path& dir, uint64_t seed) {
  torch::manual_seed(seed);
  auto model = models::load_pretrained(dir);
  models::apply_lora(*model, {4, 8.0, 0.0, ""});
  models::only_optimize_lora(*model);
  models::GenerationOptions generation;
  generation.max_new_tokens = 6;
  generation.do_sample = true;
  return std::make_shared<actors::PolicyRole>(std::make_shared<engine::HybridEngine>(model), engine::TrainOptions{},
                                              generation, rl::AlgorithmRegistry::global().create("ppo", {}),
                                              actors::PpoTrainingOptions{}, std::filesystem::path{});
}

std::map<std::string, torch::Tensor> snapshot(actors::PolicyRole& role) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : role.hybrid().model()->named_parameters())
    out[item.key()] = item.value().detach().clone();
  return out;
}

}  // namespace

TEST_CASE("async rollout: the copy takes the adapters, generates as the actor, and labels the version",
          "[actors][async_rollout]") {
  const auto root = test::scratch_dir("async_rollout");
  torch::manual_seed(2);
  models::save_pretrained(*models::make_causal_lm(test::tiny_config("llama")), root / "base");
  auto actor = lora_policy(root / "base", 3);
  auto copy = lora_policy(root / "base", 4);  // other adapters until it is handed the actor's
  actor->set_generations(5);

  actors::AsyncRollout rollout(copy, actor, /*rollout_logprobs=*/true);
  CHECK(rollout.version() == 0);
  CHECK(copy->generations() == 5);  // the actor's rollout seeds go on in the copy
  auto same_as_actor = [&] {
    const auto a = snapshot(*actor), c = snapshot(*copy);
    for (const auto& [name, value] : a)
      if (!torch::equal(value, c.at(name))) return false;
    return true;
  };
  CHECK(same_as_actor());

  // An "update": the actor's adapters move; its frozen base does not.
  {
    torch::NoGradGuard no_grad;
    for (auto& item : actor->hybrid().model()->named_parameters())
      if (item.value().requires_grad()) item.value().add_(torch::randn_like(item.value()) * 0.5);
  }
  CHECK_FALSE(same_as_actor());
  const auto frozen_before = snapshot(*copy);
  CHECK(rollout.sync_weights(1) >= 0);
  CHECK(rollout.version() == 1);
  CHECK(same_as_actor());
  for (const auto& item : copy->hybrid().model()->named_parameters())
    if (!item.value().requires_grad()) CHECK(torch::equal(item.value(), frozen_before.at(item.key())));

  // The copy's rollouts are the actor's: same weights, same generation counter.
  torch::manual_seed(6);
  const auto prompts = torch::randint(3, 50, {3, 5}, torch::kLong);  // (B0, T0)
  const actors::TensorBatch batch{{actors::keys::input_ids, prompts},
                                  {actors::keys::attention_mask, torch::ones_like(prompts)}};
  rollout.start(batch);
  CHECK(rollout.in_flight());
  CHECK_THROWS(rollout.sync_weights(2));  // not while it generates
  auto generated = rollout.wait();
  const auto expected = actor->generate(batch);
  const auto& sequences = generated.batch.at(actors::keys::sequences);  // (B, T)
  CHECK(torch::equal(sequences, expected.at(actors::keys::sequences)));
  CHECK(torch::equal(generated.batch.at(actors::keys::rollout_weights_version), torch::full({3}, 1, torch::kLong)));
  const auto logprobs = generated.batch.at(actors::keys::rollout_logprobs);  // (B, T-1)
  CHECK(logprobs.sizes() == torch::IntArrayRef{3, sequences.size(1) - 1});
  CHECK(torch::allclose(logprobs, actor->score(generated.batch).at(actors::keys::logprobs), 0, 1e-6));
  CHECK(generated.seconds > 0);
  CHECK(generated.timings.generate_seconds > 0);

  // An evaluation between cycles (its batch brings its own sampling seed) leaves the
  // rollouts' counter alone: the actor, which evaluates, and the copy, which never does,
  // go on drawing the same rollout seeds.
  const auto evaluated_before = actor->generations();
  auto evaluation = batch;
  evaluation[actors::keys::do_sample] = torch::ones({3}, torch::kLong);
  evaluation[actors::keys::generation_seed] = torch::full({3}, 1234, torch::kLong);
  actor->generate(evaluation);
  CHECK(actor->generations() == evaluated_before);
  CHECK(copy->generations() == actor->generations());
  rollout.start(batch);
  auto next = rollout.wait();
  CHECK(torch::equal(next.batch.at(actors::keys::sequences), actor->generate(batch).at(actors::keys::sequences)));
}
