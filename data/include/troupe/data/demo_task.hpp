#pragma once
/// The bundled demo task's questions: six families of short instructions with a
/// programmatic gold answer, rendered in the Human/Assistant format and parsed back.
/// See data/demo/README.md for the families and examples.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::data {

enum class DemoFamily { Arithmetic, Reverse, Uppercase, CountLetters, Sort, Polite };
inline constexpr int kDemoFamilyCount = 6;

enum class DemoOp { Plus, Minus, Times };
enum class DemoIntent { Greet, Thank, Goodbye, Apologize };

/// One question of the demo task; only the fields of its family are meaningful.
struct DemoTask {
  DemoFamily family = DemoFamily::Arithmetic;
  DemoOp op = DemoOp::Plus;          // Arithmetic
  int a = 0;                         // Arithmetic
  int b = 0;                         // Arithmetic
  std::string word;                  // Reverse, Uppercase, CountLetters
  std::vector<int> numbers;          // Sort
  DemoIntent intent = DemoIntent::Greet;  // Polite
};

/// "arithmetic", "reverse", "uppercase", "count_letters", "sort", "polite".
std::string_view demo_family_name(DemoFamily family);

/// The question text, e.g. "What is 7 plus 5?".
std::string demo_question(const DemoTask& task);

/// "\n\nHuman: " + question + "\n\nAssistant:" (REFERENCE.md's prompt format).
std::string demo_prompt(const DemoTask& task);

/// The gold answer without the leading space of a response, e.g. "12", "tac", "2 7 9",
/// "Hello, nice to meet you!".
std::string demo_answer(const DemoTask& task);

/// Parses a question written by demo_question (any word or numbers, not only those the
/// generator draws). Returns nothing for text that is not a demo question.
std::optional<DemoTask> parse_demo_question(std::string_view question);

/// Parses the last Human turn of a prompt ending in "\n\nAssistant:" (trailing spaces
/// allowed). Returns nothing when the prompt is not a demo prompt.
std::optional<DemoTask> parse_demo_prompt(std::string_view prompt);

/// The words the string families draw from (lowercase, 3 to 5 letters).
const std::vector<std::string>& demo_words();

}  // namespace troupe::data
