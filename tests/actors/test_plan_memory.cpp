/// `troupe plan`'s memory estimate per rank (placement/memory_estimate.hpp) against the
/// tensor bytes ranks really hold: a step-1 job (SFT loss, AdamW) on four data-parallel
/// ranks (threads of this process over c10d Gloo, as --num_processes ranks meet) at ZeRO
/// stages 0-3, and the actor's generation under ZeRO stage 3 (gathered layers, the
/// inference layout's packed copies, the KV cache). Each component of each rank must be
/// within 15% of the estimate; a change to the engine's layout that the plan does not
/// follow fails here.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/engine/optimizer.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/config.hpp>
#include <troupe/models/partitioned_init.hpp>
#include <troupe/placement/memory_estimate.hpp>
#include <troupe/placement/model_shape.hpp>
#include <troupe/placement/model_tensors.hpp>
#include <troupe/transport/c10d_communicator.hpp>

using namespace troupe;

namespace {

constexpr int kRanks = 4;

/// An OPT of many tensors, none of them a large share of the model (so ZeRO-1/2's owners
/// hold alike), the kept-whole embeddings a sixth of it as in OPT-350m.
const nlohmann::json& opt_config() {
  static const nlohmann::json config = {
      {"model_type", "opt"},       {"vocab_size", 512},       {"hidden_size", 64},   {"num_hidden_layers", 4},
      {"num_attention_heads", 4},  {"ffn_dim", 256},          {"max_position_embeddings", 128},
      {"word_embed_proj_dim", 64}, {"do_layer_norm_before", true}, {"dropout", 0.0}, {"pad_token_id", 1},
      {"eos_token_id", 2}};
  return config;
}

/// A critic's shape: Llama with an untied LM head, which a value model keeps but never
/// trains (no gradient, no AdamW state).
const nlohmann::json& llama_config() {
  static const nlohmann::json config = {
      {"model_type", "llama"},     {"vocab_size", 512},       {"hidden_size", 64},   {"num_hidden_layers", 4},
      {"num_attention_heads", 4},  {"num_key_value_heads", 2}, {"intermediate_size", 160},
      {"max_position_embeddings", 128}, {"tie_word_embeddings", false}, {"pad_token_id", 0}};
  return config;
}

models::CausalLM build_model(bool critic) {
  torch::manual_seed(23);
  auto model = models::make_causal_lm(models::parse_config(critic ? llama_config() : opt_config(), "plan memory test"));
  if (critic) model->add_value_head();
  return model;
}

/// What one rank held, in bytes.
struct Held {
  int64_t weights = 0, gradients = 0, optimizer = 0, zero3_gather = 0;
  int64_t inference_weights = 0, inference_layout = 0, kv_cache = 0;
};

/// Within 15% of the estimate; `at_most`: only not above it by more (a rank that holds
/// less than the largest one, which the estimate describes).
void compare(const char* what, int rank, int64_t measured, int64_t estimated, bool at_most = false) {
  INFO(what << ", rank " << rank << ": measured " << measured << " B, estimated " << estimated << " B");
  if (!at_most) CHECK(static_cast<double>(measured) >= 0.85 * static_cast<double>(estimated));
  CHECK(static_cast<double>(measured) <= 1.15 * static_cast<double>(estimated));
}

void print_row(const placement::RoleSpec& role, int rank, const char* what, int64_t measured, int64_t estimated) {
  std::cout << placement::role_name(role.role) << ", ZeRO " << role.zero_stage << " rank " << rank << " " << what << ": measured " << measured << " B, plan " << estimated
            << " B (" << (estimated ? static_cast<double>(measured) / static_cast<double>(estimated) : 0.0) << "x)\n";
}

/// Two optimizer steps of `kRanks` ranks at `stage`, and for an actor under stage 3 one
/// generation of `batch` prompts; what each rank held.
std::vector<Held> run_ranks(int stage, bool critic, const placement::BatchSpec& batch, torch::ScalarType inference_dtype,
                            int64_t reduce_bucket_size) {
  // Built on this thread (one generator): every rank the same weights.
  std::vector<models::CausalLM> models;
  std::vector<std::shared_ptr<models::PartitionedLayers>> built;
  for (int rank = 0; rank < kRanks; ++rank) {
    std::optional<models::PartitionedInit> scope;
    if (stage == 3) scope.emplace(rank, kRanks);
    models.push_back(build_model(critic));
    built.push_back(scope ? scope->layers() : nullptr);
  }
  torch::manual_seed(5);
  const auto ids = torch::randint(3, 512, {kRanks * batch.training_batch_size, batch.sequence_len()}, torch::kLong);
  const auto prompts = torch::randint(3, 512, {batch.generation_batch_size, batch.prompt_len}, torch::kLong);

  actors::Rendezvous rendezvous;
  std::vector<Held> held(kRanks);
  auto run_rank = [&](int rank) {
    auto group = std::make_shared<actors::DataParallel>("127.0.0.1", rendezvous.port(), rank, kRanks,
                                                        "plan_zero" + std::to_string(stage), std::chrono::minutes(1));
    group->set_zero_stage(stage);
    group->set_reduce_bucket_size(reduce_bucket_size);
    engine::TrainOptions options;
    options.optimizer.learning_rate = 1e-3;
    auto& model = models[static_cast<size_t>(rank)];
    engine::TrainEngine trainer(model, options);
    group->attach(trainer, built[static_cast<size_t>(rank)]);
    const auto rows = ids.narrow(0, rank * batch.training_batch_size, batch.training_batch_size);  // (b, s)
    for (int step = 0; step < 2; ++step)
      trainer.micro_step([&](models::CausalLMImpl& m) {
        if (critic) return m.values(m.hidden_states({rows})).square().mean();  // (b, s) -> ()
        return engine::language_model_loss(m.forward(rows, torch::ones_like(rows)), rows);
      });
    auto& h = held[static_cast<size_t>(rank)];
    h.weights = trainer.parameter_bytes();
    h.gradients = trainer.peak_gradient_bytes();
    h.optimizer = trainer.optimizer_state_bytes();
    if (auto* zero3 = trainer.zero3()) {
      h.zero3_gather = zero3->peak_param_resident_bytes() - zero3->param_resident_bytes();
      if (critic) return;
      engine::HybridEngineOptions hybrid_options;
      hybrid_options.inference_dtype = inference_dtype;
      engine::HybridEngine hybrid(model, hybrid_options);
      hybrid.set_zero3(zero3);
      zero3->reset_peak();
      models::GenerationOptions generation;
      generation.max_new_tokens = batch.answer_len;
      generation.eos_token_ids = {-1};  // never stops early: the cache is sized for the answer anyway
      hybrid.generate(prompts, torch::ones_like(prompts), generation);
      h.inference_weights = zero3->peak_param_resident_bytes() - zero3->param_resident_bytes();
      h.inference_layout = hybrid.last_timings().packed_bytes;
      h.kv_cache = hybrid.last_timings().kv_cache_bytes;
    }
  };
  std::vector<std::future<void>> others;
  for (int rank = 1; rank < kRanks; ++rank) others.push_back(std::async(std::launch::async, run_rank, rank));
  run_rank(0);
  for (auto& other : others) other.get();
  return held;
}

}  // namespace

TEST_CASE("plan: the per-rank memory estimate is within 15% of the tensor bytes step-1 ranks hold at ZeRO 0-3",
          "[actors][plan][memory]") {
  if (!transport::gloo_available()) {
    WARN("this build has no c10d Gloo");
    return;
  }
  // An actor at stages 0-3 generating in fp32, at stage 3 generating in bf16; a critic
  // at stages 1, 3 and 2 (its untied LM head gets no gradient); an actor and a critic at
  // stage 2 with buckets of 5000 elements instead of one bucket for the whole model (the
  // critic's LM head holds none back).
  const int variant = GENERATE(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
  const int stage = variant < 4 ? variant : variant == 4 ? 3 : variant == 5 ? 1 : variant == 6 ? 3 : 2;
  const bool critic = (variant >= 5 && variant <= 7) || variant == 9;
  const int64_t bucket = variant >= 8 ? 5000 : placement::RoleSpec{}.reduce_bucket_size;
  const auto inference = variant == 4 ? placement::Precision::Bf16 : placement::Precision::Fp32;
  INFO((critic ? "critic" : "actor") << ", ZeRO stage " << stage << ", inference " << placement::precision_name(inference)
                                     << ", reduce_bucket_size " << bucket);
  placement::BatchSpec batch;
  batch.generation_batch_size = 2;
  batch.training_batch_size = 2;
  batch.prompt_len = 12;
  batch.answer_len = 8;
  const auto held = run_ranks(stage, critic, batch,
                              inference == placement::Precision::Bf16 ? torch::kBFloat16 : torch::kFloat32, bucket);

  placement::RoleSpec actor;
  actor.role = critic ? placement::Role::Critic : placement::Role::Actor;
  actor.devices = actor.dp = kRanks;
  actor.zero_stage = stage;
  actor.reduce_bucket_size = bucket;
  const auto shape = placement::model_shape_from_config(critic ? llama_config() : opt_config(), "plan memory test");
  const auto plan = placement::estimate_memory(actor, shape, placement::Precision::Fp32, batch, inference);
  int64_t largest_optimizer = 0;
  for (const auto& h : held) largest_optimizer = std::max(largest_optimizer, h.optimizer);
  compare("optimizer, the largest rank", -1, largest_optimizer, plan.optimizer);
  for (int rank = 0; rank < kRanks; ++rank) {
    const auto& h = held[static_cast<size_t>(rank)];
    print_row(actor, rank, "weights", h.weights, plan.weights);
    print_row(actor, rank, "gradients", h.gradients, plan.gradients);
    print_row(actor, rank, "optimizer", h.optimizer, plan.optimizer);
    compare("weights", rank, h.weights, plan.weights);
    compare("gradients", rank, h.gradients, plan.gradients);
    // ZeRO-1 ranks own whole tensors: the estimate is the largest rank's state (ZeRO-2's
    // equal chunks are every rank's).
    const bool owner_shares = stage == 1;
    compare("optimizer", rank, h.optimizer, plan.optimizer, owner_shares);
    if (stage != 3) continue;
    print_row(actor, rank, "layers gathered (one and one prefetched)", h.zero3_gather, plan.zero3_gather);
    compare("layers gathered (one and one prefetched)", rank, h.zero3_gather, plan.zero3_gather);
    if (critic) continue;
    print_row(actor, rank, "generation: gathered layers", h.inference_weights, plan.inference_weights);
    print_row(actor, rank, "generation: inference layout", h.inference_layout, plan.inference_layout);
    print_row(actor, rank, "generation: KV cache", h.kv_cache, plan.kv_cache);
    compare("gathered layers", rank, h.inference_weights, plan.inference_weights);
    compare("inference layout", rank, h.inference_layout, plan.inference_layout);
    compare("KV cache", rank, h.kv_cache, plan.kv_cache);
  }
}

TEST_CASE("plan: the tensors the estimate counts are those troupe builds", "[actors][plan][memory]") {
  const std::vector<nlohmann::json> configs = {
      opt_config(),
      // OPT-350m's layout: 32-wide embeddings projected to 64, post-LN without a final norm.
      {{"model_type", "opt"}, {"vocab_size", 50}, {"hidden_size", 64}, {"num_hidden_layers", 2},
       {"num_attention_heads", 4}, {"ffn_dim", 96}, {"max_position_embeddings", 40}, {"word_embed_proj_dim", 32},
       {"do_layer_norm_before", false}},
      {{"model_type", "gpt2"}, {"vocab_size", 50}, {"n_embd", 32}, {"n_layer", 2}, {"n_head", 4}, {"n_positions", 40}},
      {{"model_type", "llama"}, {"vocab_size", 50}, {"hidden_size", 32}, {"num_hidden_layers", 2},
       {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 48},
       {"max_position_embeddings", 40}, {"tie_word_embeddings", false}}};
  for (const auto& config : configs) {
    for (const bool value_head : {false, true}) {
      INFO(config.dump() << (value_head ? " with a value head" : ""));
      auto model = models::make_causal_lm(models::parse_config(config, "test"));
      if (value_head) model->add_value_head();
      const auto shape = placement::model_shape_from_config(config, "test");
      const auto planned = placement::model_tensors(shape, value_head ? placement::Head::Value : placement::Head::LanguageModel);
      std::multiset<int64_t> built_sizes, planned_sizes;
      for (const auto& item : engine::unique_named_parameters(*model)) built_sizes.insert(item.value().numel());
      for (const auto& p : planned.parameters) planned_sizes.insert(p.numel);
      CHECK(built_sizes == planned_sizes);
      // Every linear layer (the inference layout packs an actor's).
      std::multiset<std::pair<int64_t, int64_t>> built_linears, planned_linears;
      for (auto& [name, linear] : model->linear_layers())
        built_linears.insert({linear->options().out_features(), linear->options().in_features()});
      for (const auto& l : planned.linears) planned_linears.insert({l.out_features, l.in_features});
      CHECK(built_linears == planned_linears);
    }
  }
}
