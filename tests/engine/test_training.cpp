/// Steps 1-2 training: losses against transformers / the PyTorch reference of
/// REFERENCE.md, schedules against transformers.get_scheduler, parameter groups, and a
/// resumed run that equals an uninterrupted one bit for bit.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/engine/checkpoint.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/engine/metrics_log.hpp>
#include <troupe/engine/lr_schedule.hpp>
#include <troupe/engine/optimizer.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/engine/training_loop.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>

#include "../models/model_fixtures.hpp"
#include "random_lm_task.hpp"
#include "../rl/rl_fixtures.hpp"

using namespace troupe;

namespace {

nlohmann::json engine_fixture(const std::string& name) {
  return nlohmann::json::parse(read_file(std::filesystem::path(TROUPE_FIXTURES_DIR) / "engine" / name));
}

}  // namespace

TEST_CASE("engine: the step-1 loss equals transformers' causal-LM loss", "[engine][training]") {
  const auto fixture = engine_fixture("sft_loss.json");
  for (const std::string family : {"opt", "gpt2", "llama"}) {
    INFO(family);
    const auto& c = fixture.at(family);
    auto model = models::load_pretrained(test::fixture_dir(family));
    model->eval();
    torch::NoGradGuard no_grad;
    auto logits = model->forward(test::fixture_tensor(c.at("input_ids")), test::fixture_tensor(c.at("attention_mask")));
    auto loss = engine::language_model_loss(logits, test::fixture_tensor(c.at("labels")));
    CHECK(loss.item<double>() == Approx(c.at("loss").get<double>()).epsilon(1e-5));
  }
}

TEST_CASE("engine: the step-1 gradients equal transformers' backward", "[engine][training]") {
  // A tied embedding takes its gradient from the lookup and the LM head through one node
  // (models/src/tied_embedding.hpp): its per-row norms check both parts.
  const auto fixture = engine_fixture("sft_gradients.json");
  const auto losses = engine_fixture("sft_loss.json");
  for (const std::string family : {"opt", "gpt2", "llama"}) {
    INFO(family);
    const auto& c = fixture.at(family);
    const auto& batch = losses.at(family);
    auto model = models::load_pretrained(test::fixture_dir(family));
    model->eval();  // dropout off, autograd on
    auto logits = model->forward(test::fixture_tensor(batch.at("input_ids")),
                                 test::fixture_tensor(batch.at("attention_mask")));
    engine::language_model_loss(logits, test::fixture_tensor(batch.at("labels"))).backward();
    const auto parameters = engine::unique_named_parameters(*model);
    CHECK(static_cast<size_t>(parameters.size()) == c.at("grad_norms").size());
    for (const auto& [name, norm] : c.at("grad_norms").items()) {
      INFO(name);
      const auto* p = parameters.find(name);
      REQUIRE(p != nullptr);
      REQUIRE(p->grad().defined());
      // The margin: a key bias has no true gradient (softmax ignores it), only rounding.
      CHECK(p->grad().norm().item<double>() == Approx(norm.get<double>()).epsilon(1e-4).margin(1e-6));
    }
    const auto embedding = parameters[c.at("embedding_name").get<std::string>()];
    CHECK(model->lm_head->weight.is_same(embedding) == c.at("tied").get<bool>());
    CHECK_CLOSE(embedding.grad().norm(2, {1}), test::fixture_tensor(c.at("embedding_row_norms")), 1e-5);
  }
}

TEST_CASE("engine: the reward-model loss and scores equal the PyTorch reference", "[engine][training]") {
  const auto c = engine_fixture("rm_loss.json");
  auto out = engine::reward_model_loss(test::fixture_tensor(c.at("values")), test::fixture_tensor(c.at("input_ids")),
                                       test::fixture_tensor(c.at("attention_mask")));
  CHECK(out.loss.item<double>() == Approx(c.at("loss").get<double>()).epsilon(1e-6));
  CHECK_CLOSE(out.chosen_scores, test::fixture_tensor(c.at("chosen_scores")), 1e-7);
  CHECK_CLOSE(out.rejected_scores, test::fixture_tensor(c.at("rejected_scores")), 1e-7);

  SECTION("the loss is differentiable in the values") {
    auto values = test::fixture_tensor(c.at("values")).requires_grad_();
    engine::reward_model_loss(values, test::fixture_tensor(c.at("input_ids")), test::fixture_tensor(c.at("attention_mask")))
        .loss.backward();
    CHECK(values.grad().abs().sum().item<double>() > 0);
  }
  SECTION("a batch that is not (2B, T) is refused") {
    CHECK_THROWS_AS(engine::reward_model_loss(torch::zeros({3, 4}), torch::zeros({3, 4}, torch::kLong),
                                              torch::ones({3, 4}, torch::kLong)),
                    Error);
  }
}

TEST_CASE("engine: learning-rate schedules equal transformers.get_scheduler", "[engine][training]") {
  const auto fixture = engine_fixture("schedules.json");
  for (const auto& [name, c] : fixture.items()) {
    INFO(name);
    engine::ScheduleOptions options{engine::parse_schedule_type(name), c.at("warmup").get<int64_t>(),
                                    c.at("total").get<int64_t>()};
    const auto expected = c.at("multipliers").get<std::vector<double>>();
    for (size_t step = 0; step < expected.size(); ++step)
      CHECK(engine::lr_multiplier(options, static_cast<int64_t>(step)) == Approx(expected[step]).margin(1e-12));
  }
  CHECK_THROWS_WITH(engine::parse_schedule_type("cosin"), Catch::Contains("--lr_scheduler_type") && Catch::Contains("cosine"));
}

TEST_CASE("engine: AdamW groups leave biases and norms undecayed and give LoRA its own rate", "[engine][training]") {
  auto model = models::make_causal_lm(test::tiny_config("llama"));
  models::LoraOptions lora;
  lora.rank = 2;
  models::apply_lora(*model, lora);
  engine::OptimizerOptions options;
  options.learning_rate = 1e-3;
  options.weight_decay = 0.1;
  options.lora_learning_rate = 5e-4;
  auto adamw = engine::make_adamw(*model, options);
  REQUIRE(adamw->param_groups().size() == 3);
  const auto& decay = static_cast<const torch::optim::AdamWOptions&>(adamw->param_groups()[0].options());
  const auto& no_decay = static_cast<const torch::optim::AdamWOptions&>(adamw->param_groups()[1].options());
  const auto& lora_group = static_cast<const torch::optim::AdamWOptions&>(adamw->param_groups()[2].options());
  CHECK(decay.weight_decay() == 0.1);
  CHECK(no_decay.weight_decay() == 0.0);
  CHECK(lora_group.lr() == 5e-4);
  CHECK(std::get<1>(decay.betas()) == 0.95);
  for (const auto& p : adamw->param_groups()[1].params()) CHECK(p.dim() == 1);
  CHECK(engine::param_group_of("model.norm.weight", torch::ones({4})) == engine::ParamGroup::NoDecay);
  CHECK(engine::param_group_of("model.layers.0.self_attn.q_proj.lora_A", torch::ones({2, 4})) == engine::ParamGroup::Lora);

  SECTION("a tied embedding is optimized once") {
    auto tied = models::make_causal_lm(test::tiny_config("gpt2"));  // GPT-2 ties the LM head to wte
    REQUIRE(tied->lm_head->weight.unsafeGetTensorImpl() == tied->input_embedding_weight().unsafeGetTensorImpl());
    auto optimizer = engine::make_adamw(*tied, options);
    std::set<const void*> seen;
    size_t listed = 0;
    for (const auto& group : optimizer->param_groups())
      for (const auto& p : group.params()) {
        seen.insert(p.unsafeGetTensorImpl());
        ++listed;
      }
    CHECK(listed == seen.size());
    CHECK(listed == engine::unique_named_parameters(*tied).size());
  }
  SECTION("only the adapters are trained with only_optimize_lora") {
    models::only_optimize_lora(*model);
    auto lora_only = engine::make_adamw(*model, options);
    REQUIRE(lora_only->param_groups().size() == 1);
    CHECK(static_cast<const torch::optim::AdamWOptions&>(lora_only->param_groups()[0].options()).lr() == 5e-4);
  }
}

namespace {

engine::TrainOptions small_train_options() {
  engine::TrainOptions options;
  options.optimizer.learning_rate = 1e-2;
  options.optimizer.weight_decay = 0.01;
  options.schedule = {engine::ScheduleType::Cosine, 2, 9};
  options.gradient_accumulation_steps = 2;
  return options;
}

std::vector<double> losses_of(const std::filesystem::path& metrics) {
  std::vector<double> losses;
  std::istringstream in(read_file(metrics));
  std::string line;
  while (std::getline(in, line)) {
    auto row = nlohmann::json::parse(line);
    if (row.at("phase") == "step1/train") losses.push_back(row.at("loss").get<double>());
  }
  return losses;
}

}  // namespace

TEST_CASE("engine: a run stopped and resumed equals the uninterrupted run bit for bit", "[engine][training]") {
  auto config = test::tiny_config("llama");
  config.dropout = 0.1f;
  auto run = [&](const std::filesystem::path& dir, std::vector<int64_t> stops) {
    torch::manual_seed(5);
    auto model = models::make_causal_lm(config);
    std::unique_ptr<engine::MetricsLog> log;
    for (size_t part = 0; part < stops.size(); ++part) {
      // Every part starts in a fresh "process": new model object and engine.
      torch::manual_seed(5);
      model = models::make_causal_lm(config);
      engine::TrainEngine trainer(model, small_train_options());
      engine::MetricsLog metrics(dir / "metrics.jsonl", part > 0);
      engine::PhaseOptions options;
      options.epochs = 2;
      options.max_steps = stops[part];
      options.output_dir = dir;
      options.resume = part > 0;
      options.metrics = &metrics;
      engine::run_phase(trainer, testing::random_lm_task(9), options);
    }
    return model;
  };
  const auto straight_dir = test::scratch_dir("resume_straight");
  const auto resumed_dir = test::scratch_dir("resume_parts");
  auto straight = run(straight_dir, {0});
  auto resumed = run(resumed_dir, {3, 0});
  const auto a = losses_of(straight_dir / "metrics.jsonl");
  const auto b = losses_of(resumed_dir / "metrics.jsonl");
  REQUIRE(a.size() == 9);  // 2 epochs x 9 batches / 2 accumulation
  CHECK(a == b);
  auto pa = straight->named_parameters(), pb = resumed->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].key());
    CHECK(torch::equal(pa[i].value(), pb[i].value()));
  }
  SECTION("the final save is a Hugging Face directory beside the checkpoint") {
    CHECK(std::filesystem::exists(straight_dir / "config.json"));
    CHECK(std::filesystem::exists(straight_dir / "model.safetensors"));
    CHECK(engine::has_training_checkpoint(straight_dir / "checkpoint"));
    auto reloaded = models::load_pretrained(straight_dir);
    CHECK(torch::equal(reloaded->named_parameters()[0].value(), pa[0].value()));
  }
}

TEST_CASE("engine: a non-finite loss stops training before the update", "[engine][training]") {
  auto model = models::make_causal_lm(test::tiny_config("gpt2"));
  engine::TrainEngine trainer(model, small_train_options());
  auto before = model->parameters()[0].clone();
  CHECK_THROWS_WITH(trainer.micro_step([](models::CausalLMImpl& m) {
    return m.parameters()[0].sum() * std::numeric_limits<double>::quiet_NaN();
  }), Catch::Contains("training loss is nan") && Catch::Contains("step 0"));
  CHECK(torch::equal(before, model->parameters()[0]));
  CHECK_THROWS_WITH(engine::parse_compute_dtype("fp16"), Catch::Contains("loss scaling"));
}

TEST_CASE("engine: partial_step passes accumulate into the micro_step that steps, as one pass does",
          "[engine][training]") {
  torch::manual_seed(8);
  const auto ids = torch::randint(3, 50, {4, 10}, torch::kLong);  // (B, T), rows of one length
  auto lm_loss = [](const torch::Tensor& rows) {
    return [rows](models::CausalLMImpl& m) {
      return engine::language_model_loss(m.forward(rows, torch::ones_like(rows)), rows);
    };
  };
  auto options = small_train_options();
  options.gradient_accumulation_steps = 1;
  options.schedule = {engine::ScheduleType::Constant, 0, 1};
  options.optimizer.eps = 1.0;  // Adam's step follows the gradient's size, not only its sign
  torch::manual_seed(9);  // llama: no dropout, so both runs compute the same function
  auto one = models::make_causal_lm(test::tiny_config("llama"));
  torch::manual_seed(9);
  auto split = models::make_causal_lm(test::tiny_config("llama"));
  engine::TrainEngine whole(one, options), parts(split, options);
  const auto step = whole.micro_step(lm_loss(ids));

  // Each half's mean token loss is half of the whole's: its share.
  auto half = [&](int64_t begin) {
    const auto rows = ids.narrow(0, begin, 2);
    return [&, rows](models::CausalLMImpl& m) { return 0.5 * lm_loss(rows)(m); };
  };
  const auto first = parts.partial_step(half(0));
  CHECK_FALSE(first.optimizer_stepped);
  CHECK(parts.micro_steps() == 0);
  CHECK(parts.global_step() == 0);
  const auto last = parts.micro_step(half(2));
  CHECK(last.optimizer_stepped);
  CHECK(parts.micro_steps() == 1);
  CHECK(parts.global_step() == 1);
  CHECK(first.loss + last.loss == Approx(step.loss).epsilon(1e-6));
  CHECK(last.grad_norm == Approx(step.grad_norm).epsilon(1e-5));
  auto pa = one->named_parameters(), pb = split->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].key());
    CHECK(torch::allclose(pb[i].value(), pa[i].value(), 1e-5, 1e-7));
  }
}

// bf16 sums gradient contributions in another order when a layer's backward runs on its
// own, so the two agree to bf16 rounding (~1e-3 relative), not bit for bit (fp32 is
// bitwise; see the models suite). A recomputation outside autocast would produce fp32
// outputs whose backward rejects the bf16 incoming gradient, so the run itself checks
// that autocast is replayed.
TEST_CASE("engine: bf16 training with gradient checkpointing matches bf16 training without", "[engine][training]") {
  const float dropout = GENERATE(0.0f, 0.1f);
  INFO("dropout " << dropout);
  auto gradients = [dropout](bool checkpointing) {
    torch::manual_seed(2);
    auto config = test::tiny_config("opt");
    config.dropout = dropout;
    auto model = models::make_causal_lm(config);
    model->set_gradient_checkpointing(checkpointing);
    auto options = small_train_options();
    options.gradient_accumulation_steps = 2;  // keep the gradients: no optimizer step yet
    options.compute_dtype = torch::kBFloat16;
    engine::TrainEngine trainer(model, options);
    auto ids = torch::randint(3, 50, {2, 10}, torch::kLong);
    auto step = trainer.micro_step([&](models::CausalLMImpl& m) {
      return engine::language_model_loss(m.forward(ids, torch::ones_like(ids)), ids);
    });
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return std::make_pair(step.loss, grads);
  };
  auto [loss_plain, plain] = gradients(false);
  auto [loss_checkpointed, checkpointed] = gradients(true);
  CHECK(loss_plain == loss_checkpointed);
  REQUIRE(plain.size() == checkpointed.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    const double scale = plain[i].abs().max().item<double>();
    const double difference = (plain[i] - checkpointed[i]).abs().max().item<double>();
    INFO("parameter " << i << ": max difference " << difference << " of max " << scale);
    CHECK(difference <= 1e-2 * scale + 1e-9);
  }
}
