/// The demo task's question templates: rendering, gold answers and parsing back.
#include <troupe/data/demo_task.hpp>

#include <algorithm>

#include "demo_text.hpp"

namespace troupe::data {
namespace {

using demo::consume_prefix;
using demo::consume_suffix;

constexpr std::string_view kHuman = "\n\nHuman: ";
constexpr std::string_view kAssistant = "\n\nAssistant:";
constexpr std::string_view kSortPrefix = "Sort these numbers from smallest to largest: ";

struct PoliteText {
  DemoIntent intent;
  std::string_view question;
  std::string_view answer;
};

// One fixed question and gold reply per intent: the family tests tone, not knowledge.
constexpr PoliteText kPolite[] = {
    {DemoIntent::Greet, "Greet me politely.", "Hello, nice to meet you!"},
    {DemoIntent::Thank, "Thank me politely.", "Thank you very much!"},
    {DemoIntent::Goodbye, "Say goodbye to me politely.", "Goodbye, have a nice day!"},
    {DemoIntent::Apologize, "Apologize to me politely.", "I am very sorry!"},
};

std::string_view op_name(DemoOp op) {
  switch (op) {
    case DemoOp::Plus: return "plus";
    case DemoOp::Minus: return "minus";
    case DemoOp::Times: return "times";
  }
  return "";
}

bool is_word(std::string_view text) {
  return !text.empty() && text.size() <= 20 &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

std::optional<DemoTask> parse_arithmetic(std::string_view text) {
  if (!consume_prefix(text, "What is ") || !consume_suffix(text, "?")) return std::nullopt;
  const auto pieces = demo::split_spaces(text);
  if (pieces.size() != 3) return std::nullopt;
  DemoTask task;
  task.family = DemoFamily::Arithmetic;
  if (pieces[1] == "plus") task.op = DemoOp::Plus;
  else if (pieces[1] == "minus") task.op = DemoOp::Minus;
  else if (pieces[1] == "times") task.op = DemoOp::Times;
  else return std::nullopt;
  const auto a = demo::parse_int(pieces[0]);
  const auto b = demo::parse_int(pieces[2]);
  if (!a || !b || *a < 0 || *b < 0 || *a > 9999 || *b > 9999) return std::nullopt;
  task.a = *a;
  task.b = *b;
  return task;
}

/// Matches "<prefix><word><suffix>" for the three string families.
std::optional<DemoTask> parse_word_task(std::string_view text, DemoFamily family, std::string_view prefix,
                                        std::string_view suffix) {
  if (!consume_prefix(text, prefix) || !consume_suffix(text, suffix) || !is_word(text)) return std::nullopt;
  DemoTask task;
  task.family = family;
  task.word = std::string(text);
  return task;
}

std::optional<DemoTask> parse_sort(std::string_view text) {
  if (!consume_prefix(text, kSortPrefix) || !consume_suffix(text, ".")) return std::nullopt;
  DemoTask task;
  task.family = DemoFamily::Sort;
  for (auto piece : demo::split_spaces(text)) {
    const auto n = demo::parse_int(piece);
    if (!n || *n < 0) return std::nullopt;
    task.numbers.push_back(*n);
  }
  if (task.numbers.size() < 2 || task.numbers.size() > 8) return std::nullopt;
  return task;
}

}  // namespace

std::string_view demo_family_name(DemoFamily family) {
  switch (family) {
    case DemoFamily::Arithmetic: return "arithmetic";
    case DemoFamily::Reverse: return "reverse";
    case DemoFamily::Uppercase: return "uppercase";
    case DemoFamily::CountLetters: return "count_letters";
    case DemoFamily::Sort: return "sort";
    case DemoFamily::Polite: return "polite";
  }
  return "";
}

std::string demo_question(const DemoTask& task) {
  switch (task.family) {
    case DemoFamily::Arithmetic:
      return "What is " + std::to_string(task.a) + " " + std::string(op_name(task.op)) + " " +
             std::to_string(task.b) + "?";
    case DemoFamily::Reverse: return "Reverse the word " + task.word + ".";
    case DemoFamily::Uppercase: return "Write the word " + task.word + " in capital letters.";
    case DemoFamily::CountLetters: return "How many letters are in the word " + task.word + "?";
    case DemoFamily::Sort: return std::string(kSortPrefix) + demo::join_numbers(task.numbers) + ".";
    case DemoFamily::Polite:
      for (const auto& p : kPolite)
        if (p.intent == task.intent) return std::string(p.question);
  }
  return "";
}

std::string demo_prompt(const DemoTask& task) {
  return std::string(kHuman) + demo_question(task) + std::string(kAssistant);
}

std::string demo_answer(const DemoTask& task) {
  switch (task.family) {
    case DemoFamily::Arithmetic:
      switch (task.op) {
        case DemoOp::Plus: return std::to_string(task.a + task.b);
        case DemoOp::Minus: return std::to_string(task.a - task.b);
        case DemoOp::Times: return std::to_string(task.a * task.b);
      }
      break;
    case DemoFamily::Reverse: return std::string(task.word.rbegin(), task.word.rend());
    case DemoFamily::Uppercase: return demo::to_upper(task.word);
    case DemoFamily::CountLetters: return std::to_string(task.word.size());
    case DemoFamily::Sort: {
      auto sorted = task.numbers;
      std::sort(sorted.begin(), sorted.end());
      return demo::join_numbers(sorted);
    }
    case DemoFamily::Polite:
      for (const auto& p : kPolite)
        if (p.intent == task.intent) return std::string(p.answer);
  }
  return "";
}

std::optional<DemoTask> parse_demo_question(std::string_view question) {
  question = demo::trim(question);
  if (auto t = parse_arithmetic(question)) return t;
  if (auto t = parse_word_task(question, DemoFamily::Reverse, "Reverse the word ", ".")) return t;
  if (auto t = parse_word_task(question, DemoFamily::Uppercase, "Write the word ", " in capital letters.")) return t;
  if (auto t = parse_word_task(question, DemoFamily::CountLetters, "How many letters are in the word ", "?")) return t;
  if (auto t = parse_sort(question)) return t;
  for (const auto& p : kPolite) {
    if (question == p.question) {
      DemoTask task;
      task.family = DemoFamily::Polite;
      task.intent = p.intent;
      return task;
    }
  }
  return std::nullopt;
}

std::optional<DemoTask> parse_demo_prompt(std::string_view prompt) {
  while (!prompt.empty() && prompt.back() == ' ') prompt.remove_suffix(1);
  if (!consume_suffix(prompt, kAssistant)) return std::nullopt;
  const auto human = prompt.rfind(kHuman);
  if (human == std::string_view::npos) return std::nullopt;
  return parse_demo_question(prompt.substr(human + kHuman.size()));
}

const std::vector<std::string>& demo_words() {
  static const std::vector<std::string> words = {
      "cat",   "dog",   "sun",   "moon",  "tree",  "fish",  "bird",  "book",  "milk",  "star",
      "rain",  "frog",  "cake",  "lamp",  "ship",  "king",  "ring",  "rose",  "wolf",  "bear",
      "door",  "hand",  "leaf",  "nest",  "pen",   "cup",   "box",   "hat",   "egg",   "map",
      "apple", "house", "water", "green", "lemon", "tiger", "bread", "chair", "cloud", "river"};
  return words;
}

}  // namespace troupe::data
