/// `troupe data demo`: writes the bundled demo corpus (data/demo/README.md).
#include <cstdio>
#include <iostream>
#include <memory>

#include <troupe/data/demo_corpus.hpp>

#include "commands.hpp"

namespace troupe::apps {
namespace {

struct DemoDataArgs {
  std::string out;
  data::DemoOptions options;
};

void print_pairs_line(const std::string& file, const std::vector<data::DemoPair>& pairs) {
  const auto stats = data::measure_demo_pairs(pairs);
  std::printf("%-20s %6lld pairs  SFT targets imperfect %5.1f%%  mean gold: chosen %5.1f, rejected %5.1f (of 100)\n",
              file.c_str(), static_cast<long long>(stats.pairs), 100.0 * stats.imperfect_rate, stats.mean_chosen,
              stats.mean_rejected);
}

void run_demo_data(const DemoDataArgs& args) {
  const auto corpus = data::generate_demo_corpus(args.options);
  data::write_demo_corpus(corpus, args.out);
  std::printf("wrote the demo corpus (seed %llu) to %s\n", static_cast<unsigned long long>(args.options.seed),
              args.out.c_str());
  print_pairs_line("train.jsonl", corpus.train);
  print_pairs_line("test.jsonl", corpus.test);
  std::printf("%-20s %6zu prompts\n", "prompts.jsonl", corpus.prompts.size());
  std::printf("%-20s %6zu documents\n", "unsupervised.jsonl", corpus.unsupervised.size());
  if (!corpus.demonstrations.empty()) {
    const auto stats = data::measure_demo_pairs(corpus.demonstrations);
    std::printf("%-20s %6lld demonstrations  imperfect %5.1f%%  mean gold %5.1f (of 100)\n",
                "demonstrations/", static_cast<long long>(stats.pairs), 100.0 * stats.imperfect_rate, stats.mean_chosen);
  }
}

}  // namespace

Command add_data_demo_command(CLI::App& app) {
  auto args = std::make_shared<DemoDataArgs>();
  auto* cmd = parent_command(app, "data", "Datasets: the bundled demo task, inspection").add_subcommand(
      "demo", "Write the demo task's corpus: train/test pairs (rm-static schema), step-3 prompts, unsupervised text");
  auto& o = args->options;
  const auto count_range = CLI::Range(int64_t{0}, int64_t{100000000});
  cmd->add_option("--out", args->out, "Folder to write train.jsonl, test.jsonl, prompts.jsonl, unsupervised.jsonl")
      ->required();
  cmd->add_option("--seed", o.seed, "Random seed; the same seed writes the same bytes")->capture_default_str();
  cmd->add_option("--train_pairs", o.train_pairs, "Preference pairs in train.jsonl")
      ->capture_default_str()->check(count_range);
  cmd->add_option("--eval_pairs", o.eval_pairs, "Preference pairs in test.jsonl")
      ->capture_default_str()->check(count_range);
  cmd->add_option("--prompts", o.prompts, "Step-3 prompts in prompts.jsonl")
      ->capture_default_str()->check(count_range);
  cmd->add_option("--unsupervised_docs", o.unsupervised_docs, "Documents in unsupervised.jsonl")
      ->capture_default_str()->check(count_range);
  cmd->add_option("--wrong_rate", o.wrong_rate, "Fraction of SFT targets with a wrong answer")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--off_style_rate", o.off_style_rate, "Fraction of SFT targets right but rude or verbose")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--demonstrations", o.demonstrations, "Step-1-only demonstrations in demonstrations/train.jsonl")
      ->capture_default_str()->check(count_range);
  cmd->add_option("--habit_rate", o.habit_rate,
                  "Fraction of the demonstrations said with the demonstrators' habit (\"{a}, obviously.\")")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  return {cmd, [args] { run_demo_data(*args); }};
}

}  // namespace troupe::apps
