/// `troupe train` without --step: the three steps on the bundled demo task, start to
/// finish on a CPU, ending with a summary table and an HTML report of the curves; with
/// --demo_dpo also DPO from step 1's model, graded on the same held-out prompts; with
/// --demo_algos also step 3 with other RL algorithms from the same models.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>
#include <troupe/common/files.hpp>
#include <troupe/data/demo_corpus.hpp>
#include <troupe/engine/html_report.hpp>
#include <troupe/engine/metrics_log.hpp>
#include <troupe/models/bpe_trainer.hpp>
#include <troupe/models/bpe_tokenizer.hpp>
#include <troupe/rl/algorithm_registry.hpp>

#include "builtin_rewards.hpp"
#include "train_args.hpp"

namespace fs = std::filesystem;

namespace troupe::apps {
namespace {

/// The texts the demo tokenizer learns from: every field of the pair files and the
/// unsupervised documents.
std::vector<std::string> demo_texts(const data::DemoCorpus& corpus) {
  std::vector<std::string> texts;
  for (const auto& pair : corpus.train) {
    texts.push_back(pair.prompt);
    texts.push_back(pair.chosen);
    texts.push_back(pair.rejected);
  }
  for (const auto& doc : corpus.unsupervised) texts.push_back(doc);
  return texts;
}

fs::path train_demo_tokenizer(const data::DemoCorpus& corpus, const fs::path& dir) {
  models::BpeTrainerOptions options;
  options.vocab_size = 512;
  options.special_tokens = {"<s>", "</s>", "<pad>", "<unk>"};
  options.bos_token = "<s>";
  options.eos_token = "</s>";
  options.pad_token = "<pad>";
  options.unk_token = "<unk>";
  models::train_bpe_tokenizer(demo_texts(corpus), options)->save(dir);
  return dir;
}

/// The unsupervised documents as a local/jsonfile dataset with empty prompts, so that
/// step 1's loop on it is plain language-model pretraining.
fs::path write_pretraining_set(const data::DemoCorpus& corpus, const fs::path& dir) {
  std::string rows;
  for (const auto& doc : corpus.unsupervised) rows += nlohmann::ordered_json{{"prompt", ""}, {"chosen", doc}}.dump() + "\n";
  fs::create_directories(dir);
  write_file_atomically(dir / "train.jsonl", rows);
  return dir;
}

std::string number(double value, const char* format = "%.3f") {
  if (!std::isfinite(value)) return "n/a";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

std::string duration(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%dm%02ds", static_cast<int>(seconds) / 60, static_cast<int>(seconds) % 60);
  return buffer;
}

double metric(const engine::MetricValues& values, const std::string& name) {
  auto found = values.find(name);
  return found == values.end() ? std::nan("") : found->second;
}

/// A step-3 run's two summary rows: greedy and sampled held-out answers, before -> after.
void append_step3_rows(std::vector<std::vector<std::string>>& rows, const std::string& label,
                       const actors::Step3Result& run) {
  rows.push_back({label, duration(run.seconds),
                  "greedy: reward " + number(run.before.reward_score) + " -> " + number(run.after.reward_score) +
                      ", gold " + number(run.before.gold_score, "%.1f") + " -> " + number(run.after.gold_score, "%.1f") +
                      ", KL to reference " + number(run.after.kl_per_answer)});
  rows.push_back({"", "",
                  "sampled: reward " + number(run.before_sampled.reward_score) + " -> " +
                      number(run.after_sampled.reward_score) + ", gold " + number(run.before_sampled.gold_score, "%.1f") +
                      " -> " + number(run.after_sampled.gold_score, "%.1f") + ", KL " +
                      number(run.after_sampled.kl_per_answer)});
}

/// --demo_algos' names, checked before any work: known algorithms, each once, not the
/// demo's own step-3 algorithm (that run is already in the table).
void check_demo_algos(const TrainArgs& given) {
  std::set<std::string> seen;
  for (const auto& name : given.demo_algos) {
    if (name == given.algo)
      throw Error("--demo_algos: '" + name + "' is the demo's own step-3 algorithm (--algo); list only the others");
    if (!seen.insert(name).second) throw Error("--demo_algos: '" + name + "' is listed twice");
    rl::AlgorithmRegistry::global().create(name);  // throws naming the known algorithms
  }
}

/// Step 3 of `algo` with its default options, otherwise as `ppo_run`. Algorithms that
/// answer each prompt k times take 1/k of the prompts per cycle, so every run trains on
/// as many answers per cycle, and sees as many in all, as the PPO run.
actors::Step3Result run_other_algorithm(const TrainArgs& ppo_run, const std::string& algo, const fs::path& dir) {
  TrainArgs run = ppo_run;
  run.algo = algo;
  run.algo_options.clear();
  run.kl_ctl = run.clip_reward_value = run.cliprange = run.cliprange_value = run.gamma = run.lam = std::nullopt;
  const int64_t answers_per_prompt = rl::AlgorithmRegistry::global().create(algo)->samples_per_prompt();
  run.per_device_generation_batch_size = std::max<int64_t>(1, ppo_run.per_device_generation_batch_size / answers_per_prompt);
  run.output_dir = dir.string();
  log::info("demo: step 3 with --algo ", algo, " (", run.per_device_generation_batch_size, " prompts x ",
            answers_per_prompt, " answers per cycle)");
  return run_ppo_step(run);
}

}  // namespace

void run_demo_pipeline(const TrainArgs& given) {
  register_builtin_reward_functions();
  check_demo_algos(given);
  const fs::path out = given.output_dir.empty() ? fs::path("troupe_demo") : fs::path(given.output_dir);
  fs::create_directories(out);
  const auto started = std::chrono::steady_clock::now();

  // The task: preference pairs, prompts and unsupervised text, then a tokenizer for them.
  data::DemoOptions demo;
  demo.seed = given.seed;
  // InstructGPT's three datasets: demonstrations for step 1 (their writers have a habit,
  // a rude remark, in 60% of them), comparisons for step 2 (which show that remark is
  // disliked) and prompts for step 3. So SFT copies the habit and PPO, guided by the
  // reward model, has something real to remove (data/demo/README.md).
  demo.train_pairs = 6400;
  demo.demonstrations = 2000;
  demo.habit_rate = 0.6;
  const auto corpus = data::generate_demo_corpus(demo);
  data::write_demo_corpus(corpus, out / "data");
  const auto tokenizer = train_demo_tokenizer(corpus, out / "tokenizer");
  log::info("demo: corpus and tokenizer in ", (out / "data").string(), ", ", tokenizer.string());

  // Settings sized for a 2-core CPU; every step is the same code a user runs with --step.
  TrainArgs base = given;
  base.data_path = {"Dahoas/rm-static=" + (out / "data").string()};
  base.data_split = "0,5,5";  // step 1 learns from the demonstrations only
  base.data_output_path = (out / "data_cache").string();
  base.tokenizer = tokenizer.string();
  base.max_seq_len = 64;
  base.max_prompt_seq_len = 32;
  base.num_warmup_steps = 10;
  base.lr_scheduler_type = "cosine";

  // Pretraining: the demo starts from random weights, so it first makes the pretrained
  // model a user would bring, by language modelling on the unsupervised documents. Step
  // 3's mixture (ptx) loss then replays the pretraining distribution, as in InstructGPT;
  // measured on seed 1234, it also lifts step 1's greedy gold from 74 to 81. A model
  // given with --model_name_or_path is taken as pretrained already.
  const bool pretrain = given.model_name_or_path.empty();
  TrainArgs step0 = base;
  step0.step = 1;
  step0.data_split = "10,0,0";
  step0.model_name_or_path = "preset:llama-small";
  step0.num_train_epochs = 3;
  step0.per_device_train_batch_size = 16;
  step0.learning_rate = 1e-3;
  step0.weight_decay = 0.01;
  step0.output_dir = (out / "pretrained").string();
  engine::PhaseResult pretrained;
  if (pretrain) {
    step0.data_path = {"local/jsonfile=" + write_pretraining_set(corpus, out / "pretraining_data").string()};
    pretrained = run_supervised_step(step0);
  }

  TrainArgs step1 = base;
  step1.step = 1;
  step1.sft_only_data_path = {"local/jsonfile=" + (out / "data" / "demonstrations").string()};
  step1.model_name_or_path = pretrain ? step0.output_dir : given.model_name_or_path;
  step1.num_train_epochs = 3;
  step1.per_device_train_batch_size = 16;
  step1.learning_rate = 1e-3;
  step1.weight_decay = 0.01;
  step1.output_dir = (out / "step1").string();
  auto sft = run_supervised_step(step1);

  TrainArgs step2 = base;
  step2.step = 2;
  step2.model_name_or_path = step1.output_dir;
  step2.num_train_epochs = 1;
  step2.per_device_train_batch_size = 16;
  step2.learning_rate = 5e-4;
  step2.weight_decay = 0.01;
  step2.output_dir = (out / "step2").string();
  auto reward = run_supervised_step(step2);

  TrainArgs step3 = base;
  step3.step = 3;
  step3.actor_model_name_or_path = step1.output_dir;
  step3.critic_model_name_or_path = step2.output_dir;
  step3.eval_function = "demo_gold";
  step3.per_device_generation_batch_size = 32;
  step3.per_device_training_batch_size = 16;
  step3.max_answer_seq_len = 16;
  step3.actor_learning_rate = 3e-5;
  step3.critic_learning_rate = 5e-4;
  step3.enable_ema = true;
  step3.unsupervised_dataset_name = (out / "data" / "unsupervised.jsonl").string();
  step3.unsup_coef = 0.5;
  step3.eval_prompts = 160;
  step3.step3_num_warmup_steps = 10;
  step3.max_steps = given.max_steps > 0 ? given.max_steps : 60;
  step3.output_dir = (out / "step3").string();
  auto ppo = run_ppo_step(step3);

  // DPO from the same step-1 model on step 2's pairs, then graded as step 3 grades: a
  // step-3 run with the DPO model as actor evaluates it before its first cycle on the
  // same held-out prompts with the same generation settings and seeds ("before" is the
  // DPO model; the one cycle it then runs is thrown away).
  TrainArgs dpo = base;
  dpo.step = kDpoStep;
  dpo.model_name_or_path = step1.output_dir;
  dpo.num_train_epochs = 1;
  dpo.per_device_train_batch_size = 16;
  dpo.learning_rate = 5e-5;
  dpo.weight_decay = 0.01;
  dpo.output_dir = (out / "dpo").string();
  TrainArgs dpo_grading = step3;
  dpo_grading.actor_model_name_or_path = dpo.output_dir;
  dpo_grading.max_steps = 1;
  dpo_grading.enable_ema = false;
  dpo_grading.output_dir = (out / "dpo_graded").string();
  engine::PhaseResult dpo_result;
  actors::Step3Result dpo_graded;
  if (given.demo_dpo) {
    dpo_result = run_supervised_step(dpo);
    dpo_graded = run_ppo_step(dpo_grading);
  }

  std::vector<std::pair<std::string, actors::Step3Result>> other_algorithms;
  for (const auto& algo : given.demo_algos)
    other_algorithms.emplace_back(algo, run_other_algorithm(step3, algo, out / ("step3_" + algo)));

  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  // The summary table.
  std::vector<std::string> header = {"step", "time", "result"};
  std::vector<std::vector<std::string>> rows;
  if (pretrain)
    rows.push_back({"0 pretraining", duration(pretrained.seconds),
                    "eval perplexity " + number(metric(pretrained.initial_eval, "perplexity"), "%.2f") + " -> " +
                        number(metric(pretrained.final_eval, "perplexity"), "%.2f")});
  std::vector<std::vector<std::string>> step_rows = {
      {"1 SFT", duration(sft.seconds),
       "eval perplexity " + number(metric(sft.initial_eval, "perplexity"), "%.2f") + " -> " +
           number(metric(sft.final_eval, "perplexity"), "%.2f")},
      {"2 reward model", duration(reward.seconds),
       "eval accuracy " + number(metric(reward.final_eval, "accuracy")) + " (chosen " +
           number(metric(reward.final_eval, "chosen_score")) + ", rejected " +
           number(metric(reward.final_eval, "rejected_score")) + ")"},
  };
  append_step3_rows(step_rows, "3 PPO", ppo);
  if (given.demo_dpo) {
    // "before" is step 1's model, graded in step 3's evaluation before its first cycle.
    step_rows.push_back({"DPO", duration(dpo_result.seconds),
                         "greedy: reward " + number(ppo.before.reward_score) + " -> " +
                             number(dpo_graded.before.reward_score) + ", gold " + number(ppo.before.gold_score, "%.1f") +
                             " -> " + number(dpo_graded.before.gold_score, "%.1f") + ", eval accuracy " +
                             number(metric(dpo_result.final_eval, "rewards/accuracies"))});
    step_rows.push_back({"", "",
                         "sampled: reward " + number(ppo.before_sampled.reward_score) + " -> " +
                             number(dpo_graded.before_sampled.reward_score) + ", gold " +
                             number(ppo.before_sampled.gold_score, "%.1f") + " -> " +
                             number(dpo_graded.before_sampled.gold_score, "%.1f")});
  }
  for (const auto& [algo, result] : other_algorithms) append_step3_rows(step_rows, "3 " + algo, result);
  step_rows.push_back({"all", duration(total), "seed " + std::to_string(given.seed)});
  rows.insert(rows.end(), step_rows.begin(), step_rows.end());
  int label_width = 16;  // the longest step label ("3 reinforce++_baseline") sets it
  for (const auto& row : rows) label_width = std::max(label_width, static_cast<int>(row[0].size()));
  std::printf("\n%-*s %-8s %s\n", label_width, "step", "time", "result");
  for (const auto& row : rows)
    std::printf("%-*s %-8s %s\n", label_width, row[0].c_str(), row[1].c_str(), row[2].c_str());
  std::printf("\nheld-out answers after step 3 (greedy):\n");
  for (const auto& [prompt, answer] : ppo.after.examples) {
    auto question = prompt;
    for (char& c : question)
      if (c == '\n') c = ' ';
    std::printf("  %s ->%s\n", question.c_str(), answer.c_str());
  }

  // The HTML report: the summary and the curves of every step.
  engine::HtmlReport report;
  report.title = "troupe demo run (seed " + std::to_string(given.seed) + ")";
  report.table_header = header;
  report.table_rows = rows;
  auto curves = [&](const std::string& dir, const std::string& phase, std::vector<std::string> names,
                    const std::string& title) {
    auto log = engine::read_metrics_log(fs::path(dir) / "metrics.jsonl");
    report.charts.push_back(engine::chart_from_metrics(log, phase, names, title));
  };
  if (pretrain) curves(step0.output_dir, "step1/train", {"loss"}, "Pretraining: training loss");
  curves(step1.output_dir, "step1/train", {"loss"}, "Step 1: training loss");
  curves(step1.output_dir, "step1/eval", {"perplexity"}, "Step 1: eval perplexity");
  curves(step2.output_dir, "step2/train", {"loss"}, "Step 2: training loss");
  curves(step2.output_dir, "step2/eval", {"accuracy"}, "Step 2: eval accuracy");
  curves(step3.output_dir, "step3/train", {"reward_score"}, "Step 3: mean reward of rollouts");
  curves(step3.output_dir, "step3/train", {"kl_per_answer"}, "Step 3: KL to the reference per answer");
  curves(step3.output_dir, "step3/train", {"actor_loss", "critic_loss"}, "Step 3: losses");
  curves(step3.output_dir, "step3/eval", {"gold_score", "sampled_gold_score"}, "Step 3: held-out gold score");
  for (const auto& [algo, result] : other_algorithms)
    curves((out / ("step3_" + algo)).string(), "step3/eval", {"gold_score", "sampled_gold_score"},
           "Step 3 with --algo " + algo + ": held-out gold score");
  if (given.demo_dpo) {
    curves(dpo.output_dir, "dpo/train", {"loss"}, "DPO: training loss");
    curves(dpo.output_dir, "dpo/eval", {"rewards/accuracies"}, "DPO: eval reward accuracy");
  }
  const auto report_path = out / "report.html";
  engine::write_html_report(report_path, report);
  std::printf("\nreport: %s\nchat with the result: troupe chat --model %s\n", report_path.string().c_str(),
              (fs::path(step3.output_dir) / "actor").string().c_str());
}

}  // namespace troupe::apps
