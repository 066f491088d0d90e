/// The demo task's gold scorer (scale and rules: data/demo/README.md).
#include <troupe/data/demo_gold.hpp>

#include <algorithm>
#include <cstdlib>

#include <troupe/common/error.hpp>

#include "demo_style.hpp"
#include "demo_text.hpp"

namespace troupe::data {
namespace {

using demo::split_words;
using demo::to_lower;

// Extra words a reply may carry beyond the gold answer's before it counts as verbose,
// and the points each further word costs.
constexpr int kAllowedExtraWords = 3;
constexpr double kPenaltyPerExtraWord = 2.0;

/// Partial credit for a number `distance` away from the right one.
double numeric_credit(int distance) {
  switch (distance) {
    case 0: return kDemoCorrectnessMax;
    case 1: return 25.0;
    case 2: return 15.0;
    case 3: return 5.0;
    default: return 0.0;
  }
}

std::vector<std::string_view> intent_keys(DemoIntent intent) {
  switch (intent) {
    case DemoIntent::Greet: return {"hello", "hi"};
    case DemoIntent::Thank: return {"thank", "thanks"};
    case DemoIntent::Goodbye: return {"goodbye", "bye"};
    case DemoIntent::Apologize: return {"sorry"};
  }
  return {};
}

/// The reply must hold a key word of the asked intent and none of another intent's.
double polite_correctness(DemoIntent intent, const std::vector<std::string>& lower_words) {
  auto has_key_of = [&](DemoIntent i) {
    const auto keys = intent_keys(i);
    return std::any_of(lower_words.begin(), lower_words.end(),
                       [&](const std::string& w) { return std::find(keys.begin(), keys.end(), w) != keys.end(); });
  };
  for (int i = 0; i < 4; ++i) {
    const auto other = static_cast<DemoIntent>(i);
    if (other != intent && has_key_of(other)) return 0.0;
  }
  return has_key_of(intent) ? kDemoCorrectnessMax : 0.0;
}

/// Grades the answer words (the words that are not decoration) of a task family.
double task_correctness(const DemoTask& task, const std::vector<std::string>& content) {
  const auto gold = demo_answer(task);
  switch (task.family) {
    case DemoFamily::Arithmetic:
    case DemoFamily::CountLetters: {
      if (content.size() != 1) return 0.0;
      const auto value = demo::parse_int(content[0]);
      const auto expected = demo::parse_int(gold);
      if (!value || !expected) return 0.0;
      return numeric_credit(std::abs(*value - *expected));
    }
    case DemoFamily::Reverse: {
      if (content.size() != 1) return 0.0;
      if (content[0] == gold) return kDemoCorrectnessMax;
      // The right letters in a wrong order (e.g. the word not reversed).
      auto letters = to_lower(content[0]);
      auto expected = gold;
      std::sort(letters.begin(), letters.end());
      std::sort(expected.begin(), expected.end());
      return letters == expected ? 25.0 : 0.0;
    }
    case DemoFamily::Uppercase: {
      if (content.size() != 1) return 0.0;
      if (content[0] == gold) return kDemoCorrectnessMax;
      return to_lower(content[0]) == task.word ? 25.0 : 0.0;
    }
    case DemoFamily::Sort: {
      if (content.size() != task.numbers.size()) return 0.0;
      std::vector<int> values;
      for (const auto& w : content) {
        const auto v = demo::parse_int(w);
        if (!v) return 0.0;
        values.push_back(*v);
      }
      auto sorted = task.numbers;
      std::sort(sorted.begin(), sorted.end());
      if (values == sorted) return kDemoCorrectnessMax;
      std::sort(values.begin(), values.end());
      return values == sorted ? 25.0 : 0.0;
    }
    case DemoFamily::Polite: break;
  }
  return 0.0;
}

}  // namespace

std::string_view demo_graded_part(std::string_view response) {
  size_t end = response.size();
  for (std::string_view marker : {"\n", "Human:", "Assistant:", "<|endoftext|>", "</s>"})
    end = std::min(end, response.find(marker));
  return demo::trim(response.substr(0, end));
}

DemoGrade grade_demo_response(const DemoTask& task, std::string_view response) {
  const auto words = split_words(demo_graded_part(response));
  std::vector<std::string> lower;
  for (const auto& w : words) lower.push_back(to_lower(w));

  DemoGrade grade;
  const auto& decoration = demo::decoration_words();
  if (task.family == DemoFamily::Polite) {
    grade.answered = !words.empty();
    grade.correctness = polite_correctness(task.intent, lower);
  } else {
    std::vector<std::string> content;
    for (size_t i = 0; i < words.size(); ++i)
      if (!decoration.count(lower[i])) content.push_back(words[i]);
    grade.answered = !content.empty();
    grade.correctness = task_correctness(task, content);
  }
  // Tone counts only for a reply that tries to answer: an empty or all-filler reply
  // must not earn style points that a wrong but honest answer would not beat.
  if (!grade.answered) return grade;

  const auto& rude = demo::rude_words();
  grade.rude = std::any_of(lower.begin(), lower.end(), [&](const std::string& w) { return rude.count(w) > 0; });
  const auto gold_words = static_cast<int>(split_words(demo_answer(task)).size());
  const int extra = static_cast<int>(words.size()) - gold_words - kAllowedExtraWords;
  const double verbose_penalty = std::min(kDemoVerbosePenaltyMax, kPenaltyPerExtraWord * std::max(0, extra));
  grade.verbose = verbose_penalty > 0.0;
  grade.style = std::max(0.0, kDemoStyleMax - (grade.rude ? kDemoRudePenalty : 0.0) - verbose_penalty);
  return grade;
}

double gold_score(const std::string& prompt, const std::string& response) {
  const auto task = parse_demo_prompt(prompt);
  if (!task) {
    std::string shown;
    for (char c : prompt.substr(0, 120)) shown += c == '\n' ? std::string("\\n") : std::string(1, c);
    if (prompt.size() > 120) shown += "...";
    throw Error("gold_score: not a demo task prompt (expected \"\\n\\nHuman: <demo question>\\n\\nAssistant:\"): \"" +
                shown + "\"");
  }
  return grade_demo_response(*task, response).total();
}

}  // namespace troupe::data
