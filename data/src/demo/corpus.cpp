/// Generation of the demo corpus: preference pairs with noisy supervised targets,
/// step-3 prompts and unsupervised text.
#include <troupe/data/demo_corpus.hpp>

#include <algorithm>

#include <troupe/common/error.hpp>
#include <troupe/data/demo_gold.hpp>

#include "demo_rng.hpp"
#include "demo_variants.hpp"

namespace troupe::data {
namespace {

using demo::DemoRng;

// Stream ids: one random stream per output (DemoRng::stream).
enum Stream : uint64_t {
  kTrainStream = 1,
  kTestStream = 2,
  kPromptStream = 3,
  kUnsupervisedStream = 4,
  kDemonstrationStream = 5
};

/// A polite wrong answer: it must really lose correctness points.
std::string wrong_polite_reply(const DemoTask& task, DemoRng& rng) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    auto answer = demo::wrong_answer(task, rng);
    if (grade_demo_response(task, " " + answer).correctness < kDemoCorrectnessMax) return answer;
  }
  throw Error("demo generator: no wrong answer loses points for \"" + demo_question(task) + "\"");
}

/// A near miss: a wrong answer and/or a rude or verbose tone, depending on `kind`.
std::string near_miss(const DemoTask& task, int kind, const std::string& base, DemoRng& rng) {
  switch (kind) {
    case 0: return demo::rude_reply(task, base, rng);
    case 1: return demo::verbose_reply(task, base, rng);
    default: return base;
  }
}

/// A rejected reply scoring strictly below `chosen`. Which near misses are drawn
/// depends on what chosen is, so the pair teaches the reward model something true.
std::string rejected_reply(const DemoTask& task, DemoTarget target, const std::string& chosen_answer,
                           double chosen_score, bool habit, DemoRng& rng) {
  const auto gold = demo_answer(task);
  for (int attempt = 0; attempt < 32; ++attempt) {
    std::string reply;
    switch (target) {
      case DemoTarget::Gold: {
        // Wrong in any tone, or right but rude or verbose, or (with a habit) right with
        // the demonstrators' habit.
        const auto kind = static_cast<int>(rng.below(habit ? 6 : 5));
        reply = kind == 5 ? demo::habit_reply(task, gold)
                : kind < 3 ? near_miss(task, kind, wrong_polite_reply(task, rng), rng)
                           : near_miss(task, kind - 3, gold, rng);
        break;
      }
      case DemoTarget::OffStyle:
        reply = near_miss(task, static_cast<int>(rng.below(3)), wrong_polite_reply(task, rng), rng);
        break;
      case DemoTarget::Wrong: {
        // The same or another wrong answer, said rudely or verbosely.
        const auto base = rng.below(2) == 0 ? chosen_answer : wrong_polite_reply(task, rng);
        reply = near_miss(task, static_cast<int>(rng.below(2)), base, rng);
        break;
      }
    }
    reply = " " + reply;
    if (grade_demo_response(task, reply).total() < chosen_score) return reply;
  }
  throw Error("demo generator: no rejected reply scores below the chosen one for \"" + demo_question(task) + "\"");
}

DemoPair make_pair(const DemoOptions& options, DemoRng& rng) {
  const auto task = demo::sample_task(rng);
  DemoPair pair;
  pair.prompt = demo_prompt(task);
  pair.family = task.family;
  const double r = rng.real();
  pair.target = r < options.wrong_rate                          ? DemoTarget::Wrong
                : r < options.wrong_rate + options.off_style_rate ? DemoTarget::OffStyle
                                                                  : DemoTarget::Gold;
  std::string answer;
  switch (pair.target) {
    case DemoTarget::Gold: answer = demo_answer(task); break;
    case DemoTarget::Wrong: answer = wrong_polite_reply(task, rng); break;
    case DemoTarget::OffStyle:
      // The demonstrators' habit is their off-style reply too; no draw without one, so
      // such corpora keep their bytes.
      answer = options.habit_rate > 0 && rng.real() < options.habit_rate ? demo::habit_reply(task, demo_answer(task))
                                               : near_miss(task, static_cast<int>(rng.below(2)), demo_answer(task), rng);
      break;
  }
  pair.chosen = " " + answer;
  pair.response = pair.chosen;
  const double chosen_score = grade_demo_response(task, pair.chosen).total();
  pair.rejected = rejected_reply(task, pair.target, answer, chosen_score, options.habit_rate > 0, rng);
  return pair;
}

/// A demonstration: with the habit at habit_rate, else drawn as a pair's chosen.
DemoPair make_demonstration(const DemoOptions& options, DemoRng& rng) {
  auto demo = make_pair(options, rng);
  demo.rejected.clear();
  if (rng.real() < options.habit_rate) {
    const auto task = *parse_demo_prompt(demo.prompt);
    demo.chosen = demo.response = " " + demo::habit_reply(task, demo_answer(task));
    demo.target = DemoTarget::OffStyle;
  }
  return demo;
}

std::vector<DemoPair> make_pairs(const DemoOptions& options, int64_t count, Stream stream) {
  auto rng = DemoRng::stream(options.seed, stream);
  std::vector<DemoPair> pairs;
  pairs.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) pairs.push_back(make_pair(options, rng));
  return pairs;
}

void check_options(const DemoOptions& o) {
  auto non_negative = [](int64_t value, const char* name) {
    if (value < 0) throw Error(std::string("demo corpus: ") + name + " must be >= 0, got " + std::to_string(value));
  };
  non_negative(o.train_pairs, "train_pairs");
  non_negative(o.eval_pairs, "eval_pairs");
  non_negative(o.prompts, "prompts");
  non_negative(o.unsupervised_docs, "unsupervised_docs");
  non_negative(o.demonstrations, "demonstrations");
  if (!(o.habit_rate >= 0 && o.habit_rate <= 1))
    throw Error("demo corpus: habit_rate (" + std::to_string(o.habit_rate) + ") must be in [0, 1]");
  if (!(o.wrong_rate >= 0 && o.off_style_rate >= 0 && o.wrong_rate + o.off_style_rate <= 1))
    throw Error("demo corpus: wrong_rate (" + std::to_string(o.wrong_rate) + ") and off_style_rate (" +
                std::to_string(o.off_style_rate) + ") must be >= 0 and sum to at most 1");
}

}  // namespace

DemoCorpus generate_demo_corpus(const DemoOptions& options) {
  check_options(options);
  DemoCorpus corpus;
  corpus.train = make_pairs(options, options.train_pairs, kTrainStream);
  corpus.test = make_pairs(options, options.eval_pairs, kTestStream);
  auto demonstration_rng = DemoRng::stream(options.seed, kDemonstrationStream);
  for (int64_t i = 0; i < options.demonstrations; ++i)
    corpus.demonstrations.push_back(make_demonstration(options, demonstration_rng));

  auto prompt_rng = DemoRng::stream(options.seed, kPromptStream);
  for (int64_t i = 0; i < options.prompts; ++i) corpus.prompts.push_back(demo_prompt(demo::sample_task(prompt_rng)));

  auto text_rng = DemoRng::stream(options.seed, kUnsupervisedStream);
  for (int64_t i = 0; i < options.unsupervised_docs; ++i) {
    std::string doc;
    for (int s = 0, sentences = text_rng.between(3, 6); s < sentences; ++s) {
      if (s) doc += ' ';
      doc += demo::fact_sentence(demo::sample_task(text_rng));
    }
    corpus.unsupervised.push_back(std::move(doc));
  }
  return corpus;
}

DemoPairStats measure_demo_pairs(const std::vector<DemoPair>& pairs) {
  DemoPairStats stats;
  stats.pairs = static_cast<int64_t>(pairs.size());
  if (pairs.empty()) return stats;
  int64_t imperfect = 0;
  stats.min_margin = kDemoGoldMax;
  for (const auto& p : pairs) {
    const double chosen = gold_score(p.prompt, p.chosen);
    const double rejected = gold_score(p.prompt, p.rejected);
    imperfect += chosen < kDemoGoldMax;
    stats.mean_chosen += chosen;
    stats.mean_rejected += rejected;
    stats.min_margin = std::min(stats.min_margin, chosen - rejected);
  }
  const auto n = static_cast<double>(pairs.size());
  stats.imperfect_rate = static_cast<double>(imperfect) / n;
  stats.mean_chosen /= n;
  stats.mean_rejected /= n;
  return stats;
}

}  // namespace troupe::data
