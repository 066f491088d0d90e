/// Question sampling and near-miss replies of the demo task.
#include "demo_variants.hpp"

#include <algorithm>

#include <troupe/common/error.hpp>

#include "demo_style.hpp"
#include "demo_text.hpp"

namespace troupe::data::demo {
namespace {

/// `value` moved by `distance` away from it, staying non-negative.
int nudge(int value, int distance, DemoRng& rng) {
  const bool down = rng.below(2) == 0 && value - distance >= 0;
  return down ? value - distance : value + distance;
}

std::string wrong_number(const DemoTask& task, DemoRng& rng) {
  const int gold = std::stoi(demo_answer(task));
  const double r = rng.real();
  if (task.family == DemoFamily::Arithmetic && r >= 0.75) {
    // The other operation's result: a classic slip (adding instead of multiplying).
    DemoTask other = task;
    other.op = task.op == DemoOp::Times ? DemoOp::Plus : DemoOp::Times;
    const int value = std::stoi(demo_answer(other));
    if (value != gold) return std::to_string(value);
  }
  const int distance = r < 0.5 ? 1 : rng.between(2, 3);
  int value = nudge(gold, distance, rng);
  if (task.family == DemoFamily::CountLetters && value < 1) value = gold + distance;
  return std::to_string(value);
}

std::string wrong_reverse(const DemoTask& task, DemoRng& rng) {
  const auto gold = demo_answer(task);
  switch (rng.below(3)) {
    case 0: return task.word;  // forgot to reverse
    case 1: {
      auto swapped = gold;     // almost reversed
      const auto i = rng.below(swapped.size() - 1);
      std::swap(swapped[i], swapped[i + 1]);
      return swapped;
    }
    default: {
      const auto& other = rng.pick(demo_words());
      return std::string(other.rbegin(), other.rend());
    }
  }
}

std::string wrong_uppercase(const DemoTask& task, DemoRng& rng) {
  switch (rng.below(4)) {
    case 0: return task.word;
    case 1: return to_upper(task.word.substr(0, 1)) + task.word.substr(1);
    case 2: return to_upper(rng.pick(demo_words()));
    default: return to_upper(task.word.substr(0, task.word.size() - 1));
  }
}

std::string wrong_sort(const DemoTask& task, DemoRng& rng) {
  auto sorted = task.numbers;
  std::sort(sorted.begin(), sorted.end());
  switch (rng.below(4)) {
    case 0: return join_numbers(std::vector<int>(sorted.rbegin(), sorted.rend()));
    case 1: return join_numbers(task.numbers);
    case 2: {
      const auto i = rng.below(sorted.size() - 1);
      std::swap(sorted[i], sorted[i + 1]);
      return join_numbers(sorted);
    }
    default: {
      auto& n = sorted[rng.below(sorted.size())];
      n = nudge(n, 1, rng);
      return join_numbers(sorted);
    }
  }
}

std::string wrong_polite(const DemoTask& task, DemoRng& rng) {
  DemoTask other = task;
  other.intent = static_cast<DemoIntent>((static_cast<int>(task.intent) + 1 + rng.between(0, 2)) % 4);
  return demo_answer(other);
}

}  // namespace

DemoTask sample_task(DemoRng& rng) {
  DemoTask task;
  task.family = static_cast<DemoFamily>(rng.below(kDemoFamilyCount));
  switch (task.family) {
    case DemoFamily::Arithmetic:
      task.op = static_cast<DemoOp>(rng.below(3));
      if (task.op == DemoOp::Times) {
        task.a = rng.between(0, 9);
        task.b = rng.between(0, 9);
      } else {
        task.a = rng.between(0, 20);
        task.b = task.op == DemoOp::Minus ? rng.between(0, task.a) : rng.between(0, 20);
      }
      break;
    case DemoFamily::Reverse:
    case DemoFamily::Uppercase:
    case DemoFamily::CountLetters: task.word = rng.pick(demo_words()); break;
    case DemoFamily::Sort: {
      const int count = rng.between(3, 4);
      while (static_cast<int>(task.numbers.size()) < count) {
        const int n = rng.between(0, 20);
        if (std::find(task.numbers.begin(), task.numbers.end(), n) == task.numbers.end()) task.numbers.push_back(n);
      }
      break;
    }
    case DemoFamily::Polite: task.intent = static_cast<DemoIntent>(rng.below(4)); break;
  }
  return task;
}

std::string wrong_answer(const DemoTask& task, DemoRng& rng) {
  const auto gold = demo_answer(task);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::string answer;
    switch (task.family) {
      case DemoFamily::Arithmetic:
      case DemoFamily::CountLetters: answer = wrong_number(task, rng); break;
      case DemoFamily::Reverse: answer = wrong_reverse(task, rng); break;
      case DemoFamily::Uppercase: answer = wrong_uppercase(task, rng); break;
      case DemoFamily::Sort: answer = wrong_sort(task, rng); break;
      case DemoFamily::Polite: answer = wrong_polite(task, rng); break;
    }
    if (answer != gold) return answer;  // palindromes and repeated letters can hit it
  }
  throw Error("demo generator: found no wrong answer to \"" + demo_question(task) + "\"");
}

std::string rude_reply(const DemoTask& task, std::string_view answer, DemoRng& rng) {
  return fill_template(rng.pick(rude_templates(task.family)), answer);
}

std::string habit_reply(const DemoTask& task, std::string_view answer) {
  return fill_template(rude_templates(task.family).front(), answer);
}

std::string verbose_reply(const DemoTask& task, std::string_view answer, DemoRng& rng) {
  return fill_template(rng.pick(verbose_templates(task.family)), answer);
}

std::string fact_sentence(const DemoTask& task) {
  const auto answer = demo_answer(task);
  switch (task.family) {
    case DemoFamily::Arithmetic: {
      auto question = demo_question(task);  // "What is 7 plus 5?"
      return question.substr(8, question.size() - 9) + " is " + answer + ".";
    }
    case DemoFamily::Reverse: return "The word " + task.word + " reversed is " + answer + ".";
    case DemoFamily::Uppercase: return "The word " + task.word + " in capital letters is " + answer + ".";
    case DemoFamily::CountLetters: return "The word " + task.word + " has " + answer + " letters.";
    case DemoFamily::Sort:
      return "The numbers " + join_numbers(task.numbers) + " sorted from smallest to largest are " + answer + ".";
    case DemoFamily::Polite:
      switch (task.intent) {
        case DemoIntent::Greet: return "A polite greeting is: " + answer;
        case DemoIntent::Thank: return "A polite way to thank someone is: " + answer;
        case DemoIntent::Goodbye: return "A polite goodbye is: " + answer;
        case DemoIntent::Apologize: return "A polite apology is: " + answer;
      }
  }
  return "";
}

}  // namespace troupe::data::demo
