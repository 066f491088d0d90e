#pragma once
/// The demo corpus: seeded, deterministic preference pairs in the Dahoas/rm-static
/// schema with deliberately imperfect supervised targets, a step-3 prompt set and a
/// plain-text corpus for mixture training; and the writer of its JSONL files.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <troupe/data/demo_task.hpp>

namespace troupe::data {

/// Sizes and noise of the demo corpus. The defaults fit the whole 3-step demo in about
/// ten minutes on a 2-core CPU (reasoning in data/demo/README.md).
struct DemoOptions {
  uint64_t seed = 1234;
  int64_t train_pairs = 4000;
  int64_t eval_pairs = 400;
  int64_t prompts = 1000;
  int64_t unsupervised_docs = 1000;
  /// Fraction of supervised targets that give a wrong answer (in a polite tone).
  double wrong_rate = 0.125;
  /// Fraction of supervised targets that answer right but rudely or verbosely.
  double off_style_rate = 0.125;
  /// Step-1-only demonstrations (demonstrations/train.jsonl, for --sft_only_data_path):
  /// replies written by demonstrators, as InstructGPT's SFT data, apart from the
  /// comparisons of the pairs.
  int64_t demonstrations = 0;
  /// Fraction of the demonstrations said with the demonstrators' habit (the right answer
  /// with one rude remark, "{a}, obviously."); the others are drawn as the pairs' chosen
  /// are. The same fraction of the pairs' off-style chosen replies are the habit. With a
  /// habit, a pair whose chosen is the gold reply has the habit as one of its rejected
  /// kinds, so the comparisons show that it is disliked.
  double habit_rate = 0.0;
};

/// What a pair's supervised target is: the gold reply, or one of the two kinds of noise.
enum class DemoTarget { Gold, Wrong, OffStyle };

/// One rm-static row. `response` == `chosen` (as in Dahoas/rm-static); step 1 trains on
/// prompt + chosen. The gold score of chosen is always above that of rejected.
struct DemoPair {
  std::string prompt;
  std::string response;
  std::string chosen;
  std::string rejected;
  DemoFamily family = DemoFamily::Arithmetic;
  DemoTarget target = DemoTarget::Gold;
};

struct DemoCorpus {
  std::vector<DemoPair> train;
  std::vector<DemoPair> test;
  /// Demonstrations: prompt and chosen (= response); no rejected.
  std::vector<DemoPair> demonstrations;
  /// Step-3 prompts, drawn independently of the pairs.
  std::vector<std::string> prompts;
  /// Plain-text documents of true statements about the same tasks.
  std::vector<std::string> unsupervised;
};

/// Generates the corpus; each output has its own random stream of `seed`, so changing
/// one size leaves the other outputs unchanged. Throws troupe::Error for negative sizes
/// or rates outside [0, 1] that sum above 1.
DemoCorpus generate_demo_corpus(const DemoOptions& options);

/// Gold-score statistics of a set of pairs (measured with gold_score, not taken from
/// the generator's labels).
struct DemoPairStats {
  int64_t pairs = 0;
  /// Fraction of chosen (= response) below the maximum score.
  double imperfect_rate = 0.0;
  double mean_chosen = 0.0;
  double mean_rejected = 0.0;
  /// Smallest chosen - rejected gap (positive when every pair is ordered).
  double min_margin = 0.0;
};
DemoPairStats measure_demo_pairs(const std::vector<DemoPair>& pairs);

/// One JSON object per line with exactly `prompt`, `response`, `chosen`, `rejected`.
std::string demo_pairs_jsonl(const std::vector<DemoPair>& pairs);
/// One {"prompt": ...} per line.
std::string demo_prompts_jsonl(const std::vector<std::string>& prompts);
/// One {"text": ...} per line.
std::string demo_texts_jsonl(const std::vector<std::string>& texts);

/// Writes dir/train.jsonl, dir/test.jsonl, dir/prompts.jsonl and dir/unsupervised.jsonl
/// (creating dir), each to a temporary name renamed into place.
void write_demo_corpus(const DemoCorpus& corpus, const std::filesystem::path& dir);

}  // namespace troupe::data
