/// ZeRO stage 3 in TrainEngine: two ranks as threads of this process over in-process
/// collectives (thread_collectives.hpp), each on half of every batch, against one
/// TrainEngine in one process on the whole batch (the unpartitioned path of
/// test_training.cpp, itself checked against transformers' loss); and what a rank keeps.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/engine/zero3.hpp>
#include <troupe/models/causal_lm.hpp>
#include <troupe/models/config.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>

#include "../models/model_fixtures.hpp"
#include "thread_collectives.hpp"
#include "zero3_fixtures.hpp"

using namespace troupe;
using test::load_opt;
using test::relative_difference;
using test::run_ranks;
using test::OneIntraOpThread;

namespace {

constexpr int kWorld = 2;
constexpr int64_t kSteps = 20;
constexpr int64_t kAccumulation = 2;

engine::TrainOptions zero3_train_options() {
  engine::TrainOptions options;
  options.optimizer.learning_rate = 1e-2;
  options.optimizer.weight_decay = 0.1;
  options.schedule = {engine::ScheduleType::Cosine, 2, kSteps};
  options.gradient_accumulation_steps = kAccumulation;
  options.max_grad_norm = 0.5;  // below the fixture's gradient norms: clipping acts
  return options;
}

struct Batch {
  torch::Tensor input_ids;  // (B, T) int64, no padding: both halves hold as many tokens
};

std::vector<Batch> make_batches(int64_t count) {
  torch::manual_seed(7);
  std::vector<Batch> batches;
  for (int64_t i = 0; i < count; ++i) batches.push_back({torch::randint(3, 300, {4, 12}, torch::kLong)});
  return batches;
}

torch::Tensor sft_loss(models::CausalLMImpl& model, const torch::Tensor& ids) {
  return engine::language_model_loss(model.forward(ids, torch::ones_like(ids)), ids);
}

std::map<std::string, torch::Tensor> snapshot(const models::CausalLMImpl& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : model.named_parameters()) out[item.key()] = item.value().detach().clone();
  return out;
}

struct RunRecord {
  std::vector<double> losses, grad_norms;
  std::map<std::string, torch::Tensor> parameters;
};

/// The bias slices that get no gradient in exact arithmetic: the key bias (softmax
/// ignores what it adds to every key's score alike). What they get is round-off, which
/// AdamW scales up to steps of arbitrary sign, different for any change of summation
/// order, so the comparison leaves them out (they change no output either).
torch::Tensor comparable(const std::string& name, const torch::Tensor& value) {
  if (name.find("k_proj.bias") != std::string::npos) return torch::Tensor();
  if (name.find("c_attn.bias") != std::string::npos) {  // GPT-2's fused q | k | v bias
    const int64_t e = value.size(0) / 3;
    return torch::cat({value.narrow(0, 0, e), value.narrow(0, 2 * e, e)});
  }
  return value;
}

/// Trains `load()`'s model on `batches` in one process (whole batches) and as `world`
/// ZeRO stage 3 ranks (each its rows, gathering `prefetch_layers` ahead), both in
/// float64, and checks that the two agree: each micro-batch's loss (the ranks' mean)
/// within 1e-6 relative, each step's gradient norm within 1e-10 and every parameter at
/// the end within 1e-9; and that no started gather was left unwaited. Each rank calls
/// `before_training` (when set) with its engine and the collectives before its first batch.
using BeforeTraining = std::function<void(engine::TrainEngine&, int rank, test::ThreadCollectives&)>;
RunRecord check_zero3_matches_one_process(const std::function<models::CausalLM()>& load_fp32,
                                          const engine::TrainOptions& options, const std::vector<Batch>& batches,
                                          int world = kWorld, int prefetch_layers = engine::kDefaultZero3PrefetchLayers,
                                          const BeforeTraining& before_training = {}) {
  OneIntraOpThread one_thread;  // the same arithmetic as the ranks'
  // In float64: half-batch matmuls sum in another order than whole-batch ones, and 20
  // AdamW steps amplify fp32 round-off past any tolerance that would still catch a
  // wrong chunk (it differed by CPU: 1.5e-5 on one AVX-512 machine, 9e-5 on another).
  const auto load = [&] {
    auto model = load_fp32();
    model->to(torch::kFloat64);
    return model;
  };
  RunRecord single;
  {
    engine::TrainEngine trainer(load(), options);
    for (const auto& batch : batches) {
      const auto step = trainer.micro_step([&](models::CausalLMImpl& m) { return sft_loss(m, batch.input_ids); });
      single.losses.push_back(step.loss);
      if (step.optimizer_stepped) single.grad_norms.push_back(step.grad_norm);
    }
    single.parameters = snapshot(*trainer.model());
  }

  test::ThreadCollectives group(world);
  std::vector<RunRecord> ranks(static_cast<size_t>(world));
  run_ranks([&](int rank) {
    engine::TrainEngine trainer(load(), options);
    trainer.set_zero3(group.zero3(rank), nullptr, prefetch_layers);
    if (before_training) before_training(trainer, rank, group);
    auto& record = ranks[static_cast<size_t>(rank)];
    for (const auto& batch : batches) {
      const int64_t rows = batch.input_ids.size(0) / world;
      const auto part = batch.input_ids.narrow(0, rank * rows, rows);  // (B / W, T)
      const auto step = trainer.micro_step([&](models::CausalLMImpl& m) { return sft_loss(m, part); });
      record.losses.push_back(step.loss);
      if (step.optimizer_stepped) record.grad_norms.push_back(step.grad_norm);
    }
    auto whole = trainer.zero3()->gather_full_parameters();
    record.parameters = snapshot(*trainer.model());
  }, world);
  for (int rank = 0; rank < world; ++rank) CHECK(group.unfinished_gathers(rank) == 0);

  const auto steps = static_cast<size_t>(batches.size()) / static_cast<size_t>(options.gradient_accumulation_steps);
  REQUIRE(single.grad_norms.size() == steps);
  size_t clipped = 0;
  for (size_t i = 0; i < single.losses.size(); ++i) {
    INFO("micro-batch " << i);
    // Equal token counts per part: the mean of the parts' losses is the whole batch's.
    double mean = 0;
    for (const auto& rank : ranks) mean += rank.losses[i] / world;
    // 1e-6, not 1e-10: the families compute parts of the forward in fp32 as transformers
    // does (Llama's RMSNorm), which a float64 model cannot lift; a wrong chunk is far off.
    CHECK(mean == Approx(single.losses[i]).epsilon(1e-6));
  }
  for (size_t i = 0; i < steps; ++i) {
    INFO("optimizer step " << i);
    if (single.grad_norms[i] > options.max_grad_norm) ++clipped;
    for (const auto& rank : ranks) CHECK(rank.grad_norms[i] == Approx(single.grad_norms[i]).epsilon(1e-10));
  }
  CHECK(clipped > steps / 2);  // the comparison covers clipping
  for (const auto& [name, expected] : single.parameters) {
    INFO(name);
    const auto want = comparable(name, expected);
    if (!want.defined()) continue;
    for (const auto& rank : ranks) {
      REQUIRE(rank.parameters.count(name) == 1);
      REQUIRE(rank.parameters.at(name).sizes() == expected.sizes());
      // 20 AdamW steps amplify the round-off of matmuls over half batches: on AVX-512
      // CPUs (MKL blocks them differently) a rarely seen embedding row lands 1.5e-5 off.
      CHECK(relative_difference(comparable(name, rank.parameters.at(name)), want) <= 1e-9);
    }
  }
  return single;
}

}  // namespace

TEST_CASE("engine: ZeRO stage 3 on two ranks trains as one process on the whole batch", "[engine][zero3]") {
  const auto batches = make_batches(kSteps * kAccumulation);
  const auto single = check_zero3_matches_one_process(load_opt, zero3_train_options(), batches);
  // The run moved the weights well beyond the tolerance.
  const auto initial = snapshot(*load_opt());
  CHECK(relative_difference(single.parameters.at("model.decoder.layers.0.fc1.weight"),
                            initial.at("model.decoder.layers.0.fc1.weight")) > 1e-2);
}

TEST_CASE("engine: ZeRO stage 3 on four ranks trains as one process on the whole batch", "[engine][zero3]") {
  // One row per rank: the chunks are a quarter of each flat, the last ones padded.
  check_zero3_matches_one_process(load_opt, zero3_train_options(), make_batches(kSteps * kAccumulation), 4);
}

TEST_CASE("engine: ZeRO stage 3 without prefetch trains as one process on the whole batch", "[engine][zero3]") {
  check_zero3_matches_one_process(load_opt, zero3_train_options(), make_batches(kSteps * kAccumulation), kWorld,
                                  /*prefetch_layers=*/0);
}

TEST_CASE("engine: ZeRO stage 3 prefetching two of five layers trains as one process", "[engine][zero3]") {
  // The fixtures have two layers: here gathers of two layers are on their way at once,
  // and the backward's prefetch runs down three layers.
  auto config = models::load_config(test::fixture_dir("opt"));
  config.num_layers = 5;
  config.dropout = 0.0f;
  const auto start = snapshot(*models::make_causal_lm(config));
  auto options = zero3_train_options();
  options.gradient_accumulation_steps = 1;
  options.schedule = {engine::ScheduleType::Constant, 0, 4};
  check_zero3_matches_one_process(
      [&] {
        auto model = models::make_causal_lm(config);
        torch::NoGradGuard no_grad;
        for (auto& item : model->named_parameters()) item.value().copy_(start.at(item.key()));
        return model;
      },
      options, make_batches(4), kWorld, /*prefetch_layers=*/2);
}

TEST_CASE("engine: a ZeRO stage 3 pass that throws mid-forward leaves no gather in flight", "[engine][zero3]") {
  auto options = zero3_train_options();
  options.gradient_accumulation_steps = 1;
  options.schedule = {engine::ScheduleType::Constant, 0, 4};
  const auto batches = make_batches(4);
  // What each rank saw (Catch's assertions run on this thread only).
  struct Seen {
    bool step_threw = false, forward_threw = false;
    int64_t outside = 0, resident_after_step = 0, in_flight_after_step = -1, unfinished_after_step = -1;
    int64_t in_flight_after_forward = -1;
  };
  std::vector<Seen> seen(kWorld);
  // Before its first batch each rank runs two passes that fail at layer 1, whose gather
  // layer 0 started: a training micro-step (the engine waits for it and frees it) and a
  // bare forward (the next pass's first gather does). The training after must still
  // match one process that never saw them.
  const auto fail_twice = [&](engine::TrainEngine& trainer, int rank, test::ThreadCollectives& group) {
    auto& s = seen[static_cast<size_t>(rank)];
    models::CausalLM model = trainer.model();
    const auto hooks = model->layer_hooks();
    auto failing = hooks;
    failing.before = [hooks](int64_t layer) {
      if (layer == 1) throw Error("injected failure before layer 1");
      hooks.before(layer);
    };
    const auto ids = batches.front().input_ids.narrow(0, rank * 2, 2);  // (2, T)
    s.outside = trainer.zero3()->param_resident_bytes();
    model->set_layer_hooks(failing);
    try {
      trainer.micro_step([&](models::CausalLMImpl& m) { return sft_loss(m, ids); });
    } catch (const Error&) {
      s.step_threw = true;
    }
    s.resident_after_step = trainer.zero3()->param_resident_bytes();
    s.in_flight_after_step = trainer.zero3()->layers_in_flight();
    s.unfinished_after_step = group.unfinished_gathers(rank);
    try {
      torch::NoGradGuard no_grad;
      model->forward(ids);
    } catch (const Error&) {
      s.forward_threw = true;
    }
    s.in_flight_after_forward = trainer.zero3()->layers_in_flight();
    model->set_layer_hooks(hooks);
  };
  check_zero3_matches_one_process(load_opt, options, batches, kWorld, /*prefetch_layers=*/1, fail_twice);
  for (int rank = 0; rank < kWorld; ++rank) {
    INFO("rank " << rank);
    const auto& s = seen[static_cast<size_t>(rank)];
    CHECK(s.step_threw);
    CHECK(s.in_flight_after_step == 0);
    CHECK(s.unfinished_after_step == 0);
    CHECK(s.resident_after_step == s.outside);
    CHECK(s.forward_threw);
    CHECK(s.in_flight_after_forward == 1);  // until the next collective (then checked: none unfinished)
  }
}

TEST_CASE("engine: ZeRO stage 3 trains GPT-2, Llama and LoRA adapters as one process", "[engine][zero3]") {
  const int prefetch = GENERATE(1, 0);
  INFO("prefetch_layers " << prefetch);
  auto options = zero3_train_options();
  options.gradient_accumulation_steps = 1;
  options.schedule = {engine::ScheduleType::Constant, 0, 4};
  const auto batches = make_batches(4);
  for (const std::string family : {"gpt2", "llama"}) {
    INFO(family);
    check_zero3_matches_one_process(
        [&] {
          auto model = models::load_pretrained(test::fixture_dir(family));
          models::set_dropout(*model, 0.0);
          return model;
        },
        options, batches, kWorld, prefetch);
  }
  {
    INFO("opt, only the LoRA adapters training: the frozen layer weights are partitioned too");
    auto lora_options = options;
    lora_options.optimizer.lora_learning_rate = 1e-2;
    lora_options.max_grad_norm = 0.1;  // the adapters' gradients are smaller
    auto with_lora = [] {
      auto model = load_opt();
      models::LoraOptions lora;
      lora.rank = 2;
      lora.module_filter = "decoder.layers.";
      models::apply_lora(*model, lora);
      models::only_optimize_lora(*model);
      return model;
    };
    // The adapters start random: every run takes this one's, as ranks loading one
    // checkpoint would.
    const auto start = snapshot(*with_lora());
    check_zero3_matches_one_process(
        [&] {
          auto model = with_lora();
          torch::NoGradGuard no_grad;
          for (auto& item : model->named_parameters()) item.value().copy_(start.at(item.key()));
          return model;
        },
        lora_options, batches, kWorld, prefetch);
  }
}

TEST_CASE("engine: a ZeRO stage 3 rank keeps 1/N of the parameters and one layer at a time, two with prefetch",
          "[engine][zero3]") {
  const int prefetch = GENERATE(1, 0);
  INFO("prefetch_layers " << prefetch);
  const auto reference = load_opt();
  const auto whole_values = snapshot(*reference);
  const auto ids = make_batches(1).front().input_ids;  // (4, 12)
  torch::Tensor expected_logits;
  {
    torch::NoGradGuard no_grad;
    reference->eval();
    expected_logits = reference->forward(ids);
  }
  // What each rank saw; Catch's assertions run on this thread only (they are not thread-safe).
  struct Seen {
    int64_t placeholders = 0, kept_whole_tensors = 0, kept_tensors = 0;
    int64_t whole = 0, kept = 0, padding = 0, largest_layer = 0;
    int64_t outside = 0, peak = 0, after_step = 0, after_view = 0;
    bool view_equal = true, written_back = true;
    double logits_difference = 1;
  };
  std::vector<Seen> seen(kWorld);
  test::ThreadCollectives group(kWorld);
  run_ranks([&](int rank) {
    auto& s = seen[static_cast<size_t>(rank)];
    auto model = load_opt();
    engine::TrainEngine trainer(model, zero3_train_options());
    trainer.set_zero3(group.zero3(rank), nullptr, prefetch);
    const auto& zero3 = *trainer.zero3();
    s.whole = zero3.whole_param_bytes();
    s.kept = zero3.kept_whole_bytes();
    s.padding = zero3.padding_bytes();
    s.largest_layer = zero3.largest_layer_bytes();

    // Outside a gather: the layers' weights are 0-element placeholders, the rest whole.
    for (const auto& item : model->named_parameters()) {
      if (item.key().find(".layers.") != std::string::npos) {
        s.placeholders += item.value().numel() == 0;
      } else {
        ++s.kept_tensors;
        s.kept_whole_tensors += item.value().sizes() == whole_values.at(item.key()).sizes();
      }
    }
    s.outside = zero3.param_resident_bytes();

    // A training micro-batch gathers one layer at a time (forward, and again in the backward).
    trainer.micro_step([&](models::CausalLMImpl& m) { return sft_loss(m, ids.narrow(0, rank * 2, 2)); });
    s.peak = zero3.peak_param_resident_bytes();
    s.after_step = zero3.param_resident_bytes();

    // The full view: every parameter whole, computing as unpartitioned (one micro-batch of
    // an accumulation window of two: no optimizer step yet).
    if (trainer.global_step() != 0) throw Error("an optimizer step was taken");
    {
      auto whole = trainer.zero3()->gather_full_parameters();
      for (const auto& item : model->named_parameters())
        s.view_equal = s.view_equal && item.value().equal(whole_values.at(item.key()));
      trainer.evaluate([&](models::CausalLMImpl& m) { s.logits_difference = relative_difference(m.forward(ids), expected_logits); });
    }
    s.after_view = zero3.param_resident_bytes();

    // Writing through a write-back view reaches the chunks: a loader can fill the model.
    {
      auto whole = trainer.zero3()->gather_full_parameters(/*write_back=*/true);
      torch::NoGradGuard no_grad;
      for (auto& item : model->named_parameters()) item.value().fill_(0.25);
    }
    {
      auto whole = trainer.zero3()->gather_full_parameters();
      for (const auto& item : model->named_parameters())
        s.written_back = s.written_back && item.value().eq(0.25).all().item<bool>();
    }
  });

  for (int rank = 0; rank < kWorld; ++rank) {
    INFO("rank " << rank);
    const auto& s = seen[static_cast<size_t>(rank)];
    CHECK(s.placeholders == 2 * 16);  // 2 layers of 16 tensors each
    CHECK(s.kept_whole_tensors == s.kept_tensors);
    // Resident: 1/N of everything, its chunks' padding, and the kept-whole exception.
    CHECK(s.outside <= s.whole / kWorld + s.padding + s.kept);
    CHECK(s.outside < s.whole);
    CHECK(s.peak > s.outside);
    CHECK(s.peak <= s.outside + (1 + prefetch) * s.largest_layer);
    CHECK(s.peak <= s.whole / kWorld + s.padding + (1 + prefetch) * s.largest_layer + s.kept);  // the bound of zero3.hpp
    // The layer on its way counts: the two equal layers are whole together at the peak.
    if (prefetch > 0) CHECK(s.peak == s.outside + 2 * s.largest_layer);
    CHECK(s.after_step == s.outside);
    CHECK(s.view_equal);
    CHECK(s.logits_difference <= 1e-6);
    CHECK(s.after_view == s.outside);
    CHECK(s.written_back);
  }
}

TEST_CASE("engine: ZeRO stage 3 refuses what it cannot do", "[engine][zero3]") {
  // One rank: the collectives are copies.
  engine::Zero3Collectives solo;
  solo.all_gather = [](const torch::Tensor& chunk, torch::Tensor& flat) { flat.copy_(chunk); };
  solo.reduce_scatter_sum = [](const torch::Tensor& flat, torch::Tensor& chunk) { chunk.copy_(flat); };
  solo.all_reduce_sum = [](torch::Tensor&) {};

  SECTION("a rank outside the world") {
    auto bad = solo;
    bad.rank = 2;
    bad.world = 2;
    engine::TrainEngine trainer(load_opt(), zero3_train_options());
    CHECK_THROWS_WITH(trainer.set_zero3(bad), Catch::Contains("rank 2 is outside a world of 2"));
  }
  SECTION("a missing collective") {
    auto bad = solo;
    bad.reduce_scatter_sum = nullptr;
    engine::TrainEngine trainer(load_opt(), zero3_train_options());
    CHECK_THROWS_WITH(trainer.set_zero3(bad), Catch::Contains("needs all_gather, reduce_scatter_sum"));
  }
  SECTION("after the first optimizer step, or over optimizer sharding") {
    auto options = zero3_train_options();
    options.gradient_accumulation_steps = 1;
    engine::TrainEngine trainer(load_opt(), options);
    const auto ids = make_batches(1).front().input_ids;
    trainer.micro_step([&](models::CausalLMImpl& m) { return sft_loss(m, ids); });
    CHECK_THROWS_WITH(trainer.set_zero3(solo), Catch::Contains("before the first optimizer step"));
  }
  SECTION("a gradient sync on top") {
    engine::TrainEngine trainer(load_opt(), zero3_train_options());
    trainer.set_zero3(solo);
    CHECK_THROWS_WITH(trainer.set_gradient_sync([](const std::vector<torch::Tensor>&) {}),
                      Catch::Contains("ZeRO stage 3 reduce-scatters"));
  }
  SECTION("autograd over a KV cache") {
    auto model = load_opt();
    engine::Zero3Partition partition(model, solo);
    models::KVCache cache(model->config(), 1, 8, torch::TensorOptions().dtype(torch::kFloat32));
    const auto ids = torch::tensor({{5, 6}}, torch::kLong);
    CHECK_THROWS_WITH(model->forward(ids, {}, {}, &cache), Catch::Contains("cannot run with autograd over a KV cache"));
  }
}

TEST_CASE("engine: the hybrid engine generates from a ZeRO stage 3 actor as from a whole one", "[engine][zero3]") {
  engine::Zero3Collectives solo;  // one rank: the collectives are copies
  solo.all_gather = [](const torch::Tensor& chunk, torch::Tensor& flat) { flat.copy_(chunk); };
  solo.reduce_scatter_sum = [](const torch::Tensor& flat, torch::Tensor& chunk) { chunk.copy_(flat); };
  solo.all_reduce_sum = [](torch::Tensor&) {};
  const auto ids = torch::tensor({{0, 0, 5, 17, 42}, {9, 8, 7, 6, 5}}, torch::kLong);  // (2, 5), left padded
  const auto mask = torch::tensor({{0, 0, 1, 1, 1}, {1, 1, 1, 1, 1}}, torch::kLong);
  models::GenerationOptions options;
  options.max_new_tokens = 6;

  engine::HybridEngine whole_engine(load_opt());
  const auto expected = whole_engine.generate(ids, mask, options);

  auto model = load_opt();
  engine::TrainEngine trainer(model, zero3_train_options());
  trainer.set_zero3(solo);
  engine::HybridEngine hybrid(model);
  hybrid.set_zero3(trainer.zero3());
  const int64_t resident = trainer.zero3()->param_resident_bytes();
  const auto got = hybrid.generate(ids, mask, options);
  CHECK(got.sequences.equal(expected.sequences));
  CHECK(got.attention_mask.equal(expected.attention_mask));
  // Back in the training layout, partitioned again.
  CHECK(trainer.zero3()->param_resident_bytes() == resident);
  CHECK(model->named_parameters()["model.decoder.layers.0.fc1.weight"].numel() == 0);
  // Scoring needs no full view: it gathers layer by layer.
  const auto scored = hybrid.score_logprobs(got.sequences, got.attention_mask);
  const auto expected_scores = whole_engine.score_logprobs(got.sequences, got.attention_mask);
  CHECK(relative_difference(scored, expected_scores) <= 1e-6);
}

// Hidden (a minute of CPU): the memory bound on OPT-125m's shape, with the numbers printed.
TEST_CASE("engine: ZeRO stage 3 memory on OPT-125m's shape", "[.][zero3_memory]") {
  const nlohmann::json config = {{"model_type", "opt"}, {"vocab_size", 50272}, {"hidden_size", 768},
                                 {"num_hidden_layers", 12}, {"num_attention_heads", 12}, {"ffn_dim", 3072},
                                 {"max_position_embeddings", 2048}, {"word_embed_proj_dim", 768},
                                 {"do_layer_norm_before", true}, {"pad_token_id", 1}, {"eos_token_id", 2}};
  for (const int world : {2, 4}) {
    struct Seen {
      int64_t whole = 0, kept = 0, padding = 0, layer = 0, outside = 0, peak = 0, optimizer = 0;
    };
    std::vector<Seen> seen(static_cast<size_t>(world));
    test::ThreadCollectives group(world);
    run_ranks(
        [&](int rank) {
          // Each rank's random weights differ (one generator, raced by the threads): only
          // sizes matter here.
          auto& s = seen[static_cast<size_t>(rank)];
          auto options = zero3_train_options();
          options.gradient_accumulation_steps = 1;
          engine::TrainEngine trainer(models::make_causal_lm(models::parse_config(config, "opt-125m shape")), options);
          trainer.set_zero3(group.zero3(rank));
          const auto& z = *trainer.zero3();
          s.whole = z.whole_param_bytes();
          s.kept = z.kept_whole_bytes();
          s.padding = z.padding_bytes();
          s.layer = z.largest_layer_bytes();
          s.outside = z.param_resident_bytes();
          const auto ids = torch::randint(3, 50272, {1, 16}, torch::kLong);
          trainer.micro_step([&](models::CausalLMImpl& m) { return sft_loss(m, ids); });
          s.peak = z.peak_param_resident_bytes();
          s.optimizer = trainer.optimizer_state_bytes();
        },
        world);
    const auto mib = [](int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); };
    for (int rank = 0; rank < world; ++rank) {
      const auto& s = seen[static_cast<size_t>(rank)];
      CHECK(s.peak <= s.whole / world + s.padding + s.layer + s.kept);
      std::cout << "OPT-125m shape, ZeRO-3 rank " << rank << " of " << world << ": parameters whole " << mib(s.whole)
                << " MiB; resident " << mib(s.outside) << " MiB (kept whole " << mib(s.kept) << " MiB); peak "
                << mib(s.peak) << " MiB (one layer " << mib(s.layer) << " MiB); AdamW state " << mib(s.optimizer)
                << " MiB\n";
    }
  }
}
