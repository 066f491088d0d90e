// DPO: the loss, rewards and gradient against the PyTorch reference of
// tests/reference/make_dpo_fixtures.py, the first step against a reference equal to the
// policy, and the task on a fixture model with a copied or a shared (LoRA) reference.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/data/collate.hpp>
#include <troupe/data/pipeline.hpp>
#include <troupe/engine/dpo.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>

#include "../models/model_fixtures.hpp"
#include "../rl/rl_fixtures.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

nlohmann::json dpo_fixture() {
  return nlohmann::json::parse(read_file(fs::path(TROUPE_FIXTURES_DIR) / "engine" / "dpo_loss.json"));
}

double mean_of(const engine::MetricValues& sums, const std::string& name, int64_t pairs) {
  return sums.at(name) / static_cast<double>(pairs);
}

/// Step 2's share of the rm-static fixture (3 training pairs, 1 eval pair), tokenized
/// with the OPT fixture's tokenizer and cut at its 64 positions.
data::PhaseData fixture_pairs(const std::string& scratch) {
  const auto dir = fs::path(TROUPE_TEST_TMP_DIR) / "dpo" / scratch;
  fs::remove_all(dir);
  data::PipelineOptions o;
  o.data_path = {data::parse_dataset_spec("Dahoas/rm-static=" +
                                          (fs::path(TROUPE_FIXTURES_DIR) / "data" / "rm-static").string())};
  o.split.data_split = {0, 1, 0};
  o.tokenizer_dir = test::fixture_dir("opt");
  o.cache_dir = dir / "cache";
  o.lengths.max_seq_len = 64;
  return data::load_phase_data(o, 2);
}

engine::SupervisedTaskOptions task_options() {
  engine::SupervisedTaskOptions o;
  o.train_batch_size = 4;
  o.eval_batch_size = 2;
  o.max_seq_len = 64;
  o.pad_token_id = 0;  // the OPT fixture's <pad>
  return o;
}

}  // namespace

TEST_CASE("dpo: loss, rewards and gradient equal the PyTorch reference", "[engine][dpo]") {
  const auto c = dpo_fixture();
  const auto ids = test::fixture_tensor(c.at("input_ids"));               // (2B, T)
  const auto mask = test::fixture_tensor(c.at("attention_mask"));         // (2B, T)
  const auto reference_logits = test::fixture_tensor(c.at("reference_logits"));  // (2B, T, V)
  const int64_t pairs = ids.size(0) / 2;

  const auto label_mask = engine::dpo_label_mask(ids, mask);  // (2B, T)
  CHECK(torch::equal(label_mask, test::fixture_tensor(c.at("label_mask"))));
  const auto reference_logps = engine::dpo_sequence_log_probs(reference_logits, ids, label_mask);  // (2B)
  CHECK_CLOSE(reference_logps, test::fixture_tensor(c.at("reference_logps")), 1e-5);

  for (const auto& expected : c.at("cases")) {
    engine::DpoOptions options;
    options.beta = expected.at("beta").get<double>();
    options.label_smoothing = expected.at("label_smoothing").get<double>();
    INFO("beta " << options.beta << ", label_smoothing " << options.label_smoothing);
    auto policy_logits = test::fixture_tensor(c.at("policy_logits")).requires_grad_();  // (2B, T, V)
    auto policy_logps = engine::dpo_sequence_log_probs(policy_logits, ids, label_mask);  // (2B)
    CHECK_CLOSE(policy_logps, test::fixture_tensor(expected.at("policy_logps")), 1e-5);

    auto out = engine::dpo_loss(policy_logps, reference_logps, options);
    // float32 here against float64 there: 1e-5 (the log-probs are sums of ~6 tokens).
    CHECK(out.loss.item<double>() == Approx(expected.at("loss").get<double>()).margin(1e-5));
    CHECK_CLOSE(out.chosen_rewards, test::fixture_tensor(expected.at("chosen_rewards")), 1e-5);
    CHECK_CLOSE(out.rejected_rewards, test::fixture_tensor(expected.at("rejected_rewards")), 1e-5);
    const auto sums = engine::dpo_reward_sums(out);
    CHECK(mean_of(sums, "rewards/accuracies", pairs) == Approx(expected.at("accuracies").get<double>()).margin(1e-12));
    CHECK(mean_of(sums, "rewards/margins", pairs) == Approx(expected.at("margins").get<double>()).margin(1e-5));

    out.loss.backward();
    CHECK_CLOSE(policy_logits.grad(), test::fixture_tensor(expected.at("grad_policy_logits")), 1e-6);
  }
}

TEST_CASE("dpo: with the policy equal to the reference the loss is log 2 and the rewards 0", "[engine][dpo]") {
  const auto c = dpo_fixture();
  const auto ids = test::fixture_tensor(c.at("input_ids"));
  const auto label_mask = engine::dpo_label_mask(ids, test::fixture_tensor(c.at("attention_mask")));
  const auto logps = engine::dpo_sequence_log_probs(test::fixture_tensor(c.at("policy_logits")), ids, label_mask);
  for (double label_smoothing : {0.0, 0.1, 0.3}) {
    engine::DpoOptions options;
    options.label_smoothing = label_smoothing;
    auto out = engine::dpo_loss(logps, logps.clone(), options);
    CHECK(out.loss.item<double>() == Approx(std::log(2.0)).margin(1e-6));
    const auto sums = engine::dpo_reward_sums(out);
    CHECK(sums.at("rewards/accuracies") == 0);
    CHECK(sums.at("rewards/margins") == 0);
    CHECK(sums.at("rewards/chosen") == 0);
  }
}

TEST_CASE("dpo: the label mask zeroes each pair's shared prompt, and nothing when the rows never differ", "[engine][dpo]") {
  // Pair 0 differs from column 2; pair 1 only where the chosen row is padding (column 3);
  // pair 2 never differs (divergence index 0: the whole rows count).
  auto ids = torch::tensor({5, 6, 7, 8, 5, 6, 9, 0, 4, 4, 4, 0,   // chosen
                            5, 6, 9, 9, 5, 6, 9, 7, 4, 4, 4, 0},  // rejected
                           torch::kLong)
                 .view({6, 4});
  auto mask = torch::tensor({1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}, torch::kLong).view({6, 4});
  auto expected =
      torch::tensor({0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0}, torch::kLong).view({6, 4});
  CHECK(torch::equal(engine::dpo_label_mask(ids, mask), expected));
}

TEST_CASE("dpo: --beta and --label_smoothing out of range are refused by name", "[engine][dpo]") {
  using Catch::Matchers::Contains;
  auto check = [](double beta, double label_smoothing) {
    engine::DpoOptions o;
    o.beta = beta;
    o.label_smoothing = label_smoothing;
    engine::check_dpo_options(o);
  };
  CHECK_NOTHROW(check(0.1, 0.0));
  CHECK_NOTHROW(check(0.5, 0.49));
  CHECK_THROWS_WITH(check(0.0, 0.0), Contains("--beta"));
  CHECK_THROWS_WITH(check(-1.0, 0.0), Contains("--beta"));
  CHECK_THROWS_WITH(check(0.1, 0.5), Contains("--label_smoothing"));
  CHECK_THROWS_WITH(check(0.1, -0.1), Contains("--label_smoothing"));
}

TEST_CASE("dpo: the task starts at log 2 and learns the pairs, with a copied or a shared reference", "[engine][dpo]") {
  const auto pairs = fixture_pairs("task");
  REQUIRE(pairs.train.size() == 3);
  const bool lora = GENERATE(false, true);
  INFO((lora ? "LoRA with a frozen base: shared reference" : "full model: copied reference"));
  auto model = models::load_pretrained(test::fixture_dir("opt"));
  if (lora) {
    models::LoraOptions l;
    l.rank = 4;
    models::apply_lora(*model, l);
    models::only_optimize_lora(*model);
  }
  auto reference = std::make_shared<engine::ReferencePolicy>(model);
  CHECK(reference->kind() == (lora ? engine::ReferenceKind::SharedBase : engine::ReferenceKind::FrozenCopy));
  engine::DpoOptions dpo;
  dpo.beta = 0.5;
  auto task = engine::make_dpo_task(pairs, task_options(), dpo, reference);
  REQUIRE(task.batches_per_epoch == 1);

  engine::TrainOptions train;
  train.optimizer.learning_rate = 1e-2;
  train.optimizer.lora_learning_rate = 1e-2;
  train.schedule.type = engine::parse_schedule_type("constant");
  train.schedule.total_steps = 8;
  engine::TrainEngine engine(model, train);
  engine::MetricValues before;
  engine.evaluate([&](models::CausalLMImpl& m) { before = task.evaluate(m); });
  CHECK(before.at("loss") == Approx(std::log(2.0)).margin(1e-6));
  CHECK(before.at("rewards/accuracies") == 0);
  CHECK(before.at("rewards/margins") == 0);

  // The reference's log-probs of a batch, to see that training leaves them alone.
  auto batch = data::make_step2_batch(pairs.train, {0, 1, 2}, 64, 0);
  auto reference_before = reference->logprobs(batch.input_ids, batch.attention_mask);  // (2B, T - 1)

  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 8; ++step) {
    engine::BatchLoss out;
    engine.micro_step([&](models::CausalLMImpl& m) {
      out = task.loss(m, 0, 0);
      return out.loss;
    });
    if (step == 0) {
      first_loss = out.loss.item<double>();
      CHECK(out.metrics.at("rewards/margins") == Approx(0).margin(1e-6));  // the fixture has no dropout
    }
    last_loss = out.loss.item<double>();
  }
  CHECK(first_loss == Approx(std::log(2.0)).margin(1e-6));
  CHECK(last_loss < first_loss - 0.05);  // it learns the pairs
  CHECK(torch::allclose(reference->logprobs(batch.input_ids, batch.attention_mask), reference_before, 0, 0));
  engine::MetricValues after;
  engine.evaluate([&](models::CausalLMImpl& m) { after = task.evaluate(m); });
  CHECK(after.count("rewards/chosen") == 1);
  CHECK(after.count("rewards/rejected") == 1);
}
