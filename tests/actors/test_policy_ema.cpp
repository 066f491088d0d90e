/// The EMA of a LoRA actor: it averages only the adapters (the frozen base is its own
/// average), and the EMA model it saves is what the full-copy EMA saved: the base with
/// the averaged adapters folded in.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <troupe/actors/experience_batch.hpp>
#include "step3_roles.hpp"
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/rl/algorithm_registry.hpp>

#include "../models/model_fixtures.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

int64_t tensor_bytes(const torch::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

}  // namespace

TEST_CASE("step 3: a LoRA actor's EMA holds only the adapters and saves the full-copy EMA model",
          "[actors][step3][ema][lora]") {
  const auto root = test::scratch_dir("policy_ema_lora");
  torch::manual_seed(2);
  models::save_pretrained(*models::make_causal_lm(test::tiny_config("llama")), root / "base");
  auto actor = models::load_pretrained(root / "base");
  models::apply_lora(*actor, {4, 8.0, 0.0, ""});
  models::only_optimize_lora(*actor);
  auto hybrid = std::make_shared<engine::HybridEngine>(actor);
  engine::TrainOptions train;
  train.optimizer.lora_learning_rate = 5e-2;  // big steps, so the average visibly lags
  actors::PpoTrainingOptions ppo;
  ppo.enable_ema = true;
  ppo.ema_beta = 0.6;
  ppo.minibatch_size = 2;
  models::GenerationOptions generation;
  actors::PolicyRole policy(hybrid, train, generation, rl::AlgorithmRegistry::global().create("ppo", {}), ppo, {});

  int64_t adapter_bytes = 0, model_bytes = 0;
  for (const auto& item : actor->named_parameters()) {
    model_bytes += tensor_bytes(item.value());
    if (item.value().requires_grad()) adapter_bytes += tensor_bytes(item.value());
  }
  REQUIRE(policy.ema());
  CHECK(policy.ema()->bytes() == adapter_bytes);  // float32 averages of float32 adapters
  CHECK(policy.ema()->bytes() * 4 < model_bytes);
  for (const auto& item : policy.ema()->averages()) CHECK(item.key().find(".lora_") != std::string::npos);

  // Two train() calls on one experience; the EMA steps once after each, and by hand:
  // e = beta * e + (1 - beta) * theta over the adapters.
  std::map<std::string, torch::Tensor> expected;
  for (const auto& item : actor->named_parameters())
    if (item.value().requires_grad()) expected[item.key()] = item.value().detach().clone();
  torch::manual_seed(4);
  auto sequences = torch::randint(3, 50, {2, 8}, torch::kLong);  // (B, T), prompt 4 + answer 4
  auto mask = torch::ones_like(sequences);                        // (B, T)
  auto exp = rl::Experience::from_generation(sequences.narrow(1, 0, 4), sequences, mask);
  exp.logprobs = policy.score({{"sequences", sequences}, {"attention_mask", mask}}).at("logprobs");  // (B, T-1)
  exp.advantages = torch::tensor({1.0f, -1.0f}).unsqueeze(1).expand({2, 4}).contiguous();       // (B, A)
  for (int64_t step = 0; step < 2; ++step) {
    policy.train({actors::to_tensor_batch(exp)}, step);
    for (auto& [name, average] : expected) average = 0.6 * average + 0.4 * actor->named_parameters()[name].detach();
  }
  const auto trained = [&] {
    std::map<std::string, torch::Tensor> now;
    for (const auto& item : actor->named_parameters()) now[item.key()] = item.value().detach().clone();
    return now;
  }();

  policy.save((root / "actor").string());
  // What the full-copy EMA saved: the unchanged base with the averaged adapters fused.
  auto base = models::load_pretrained(root / "base");
  auto ema = models::load_pretrained(root / "actor_ema");
  auto ema_weights = ema->named_parameters();
  double largest_lag = 0;
  for (auto& [name, linear] : base->linear_layers()) {
    INFO(name);
    auto weight = linear->weight.detach();  // (out, in)
    if (name != "lm_head") {
      const auto& a = expected.at(name + ".lora_A");  // (r, in)
      const auto& b = expected.at(name + ".lora_B");  // (out, r)
      weight = weight + torch::mm(b, a) * (8.0 / 4);
      largest_lag = std::max(largest_lag, (trained.at(name + ".lora_B") - b).abs().max().item<double>());
    }
    CHECK(torch::allclose(ema_weights[name + ".weight"], weight, 0, 1e-6));
  }
  CHECK(largest_lag > 1e-3);  // the average is not the trained adapter: the test can tell
  for (const auto& item : base->named_parameters())
    if (item.key().find("norm") != std::string::npos || item.key().find("embed") != std::string::npos)
      CHECK(torch::equal(ema_weights[item.key()], item.value()));
  // The live actor keeps its trained adapters after the save.
  for (const auto& item : actor->named_parameters()) CHECK(torch::equal(item.value(), trained.at(item.key())));
}
