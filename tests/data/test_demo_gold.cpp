// The demo task's gold scorer and question parser on hand-written cases per family.
#include <catch2/catch.hpp>

#include <troupe/common/error.hpp>
#include <troupe/data/demo_gold.hpp>
#include <troupe/data/demo_task.hpp>

using namespace troupe::data;

namespace {

std::string prompt(const std::string& question) { return "\n\nHuman: " + question + "\n\nAssistant:"; }

double score(const std::string& question, const std::string& response) {
  return gold_score(prompt(question), response);
}

}  // namespace

TEST_CASE("demo gold: arithmetic", "[data][demo]") {
  const std::string q = "What is 7 plus 5?";
  CHECK(score(q, " 12") == 100.0);
  CHECK(score(q, "12") == 100.0);
  CHECK(score(q, " The answer is 12.") == 100.0);   // a short frame is fine
  CHECK(score(q, " 13") == 55.0);                    // off by one: 25 + 30
  CHECK(score(q, " 10") == 45.0);                    // off by two: 15 + 30
  CHECK(score(q, " 35") == 30.0);                    // wrong: style points only
  CHECK(score(q, " 12, obviously.") == 80.0);        // rude: -20
  CHECK(score(q, " Well, let me think about this step by step. The answer is 12.") == 90.0);  // verbose: -10
  CHECK(score(q, " Ugh. Well, let me think about this step by step. The answer is 13.") == 25.0);
  CHECK(score(q, " 12 13") == 30.0);                 // malformed: two answers
  CHECK(score(q, " twelve") == 30.0);                // malformed: not a number
  CHECK(score(q, "") == 0.0);
  CHECK(score(q, "   ") == 0.0);
  CHECK(score(q, " Whatever.") == 0.0);              // no answer: no style points either
  CHECK(score("What is 9 minus 3?", " 6") == 100.0);
  CHECK(score("What is 9 minus 3?", " -6") == 30.0);
  CHECK(score("What is 4 times 6?", " 24") == 100.0);
  CHECK(score("What is 4 times 6?", " 10") == 30.0);  // added instead of multiplied
}

TEST_CASE("demo gold: string families", "[data][demo]") {
  const std::string rev = "Reverse the word cat.";
  CHECK(score(rev, " tac") == 100.0);
  CHECK(score(rev, " cat") == 55.0);   // right letters, wrong order
  CHECK(score(rev, " TAC") == 55.0);
  CHECK(score(rev, " dog") == 30.0);
  CHECK(score(rev, " tac. Stupid question.") == 80.0);
  CHECK(score(rev, " That is a very good question. After thinking about it carefully, I believe the answer is tac.") == 90.0);
  CHECK(score(rev, " tac cat") == 30.0);  // listing candidates earns nothing
  CHECK(score(rev, "") == 0.0);

  const std::string up = "Write the word dog in capital letters.";
  CHECK(score(up, " DOG") == 100.0);
  CHECK(score(up, " dog") == 55.0);
  CHECK(score(up, " Dog") == 55.0);
  CHECK(score(up, " DO") == 30.0);
  CHECK(score(up, " CAT") == 30.0);
  CHECK(score(up, " Ugh. DOG") == 80.0);

  const std::string count = "How many letters are in the word apple?";
  CHECK(score(count, " 5") == 100.0);
  CHECK(score(count, " 4") == 55.0);
  CHECK(score(count, " five") == 30.0);
  CHECK(score(count, " 5. Even an idiot knows that.") == 76.0);  // rude, and 2 words too long
}

TEST_CASE("demo gold: sort", "[data][demo]") {
  const std::string q = "Sort these numbers from smallest to largest: 8 3 5.";
  CHECK(score(q, " 3 5 8") == 100.0);
  CHECK(score(q, " 3, 5, 8") == 100.0);
  CHECK(score(q, " 8 5 3") == 55.0);  // the right numbers in the wrong order
  CHECK(score(q, " 8 3 5") == 55.0);
  CHECK(score(q, " 3 5") == 30.0);    // a number dropped
  CHECK(score(q, " 3 5 9") == 30.0);
  CHECK(score(q, " Obviously 3 5 8, dummy.") == 80.0);
  CHECK(score(q, "") == 0.0);
}

TEST_CASE("demo gold: polite", "[data][demo]") {
  const std::string q = "Greet me politely.";
  CHECK(score(q, " Hello, nice to meet you!") == 100.0);
  CHECK(score(q, " Hi!") == 100.0);
  CHECK(score(q, " Goodbye, have a nice day!") == 30.0);  // the wrong intent
  CHECK(score(q, " Hello, goodbye!") == 30.0);            // two intents at once
  CHECK(score(q, " Ugh. Hello, nice to meet you!") == 80.0);
  CHECK(score(q, " Hello, nice to meet you! It was really a great pleasure to talk with you today, and I hope we talk "
                 "again soon.") == 90.0);
  CHECK(score(q, " Whatever.") == 10.0);  // an answer, but neither right nor polite
  CHECK(score(q, "") == 0.0);
  CHECK(score("Thank me politely.", " Thank you very much!") == 100.0);
  CHECK(score("Say goodbye to me politely.", " Goodbye, have a nice day!") == 100.0);
  CHECK(score("Apologize to me politely.", " I am very sorry!") == 100.0);
  CHECK(score("Apologize to me politely.", " Sorry, whatever.") == 80.0);
}

TEST_CASE("demo gold: only the reply up to an end marker is graded", "[data][demo]") {
  const std::string q = "What is 7 plus 5?";
  CHECK(score(q, " 12<|endoftext|> 13 stupid") == 100.0);
  CHECK(score(q, " 12</s>junk") == 100.0);
  CHECK(score(q, " 12\n\nHuman: What is 1 plus 1?\n\nAssistant: 2") == 100.0);
  CHECK(score(q, " 12 Human: 13") == 100.0);
  CHECK(score(q, "\n12") == 0.0);  // the reply ended before saying anything
  CHECK(demo_graded_part("  DOG  \nmore") == "DOG");
}

TEST_CASE("demo gold: every word's gold answers score the maximum", "[data][demo]") {
  // Catches a word (or its reversal) that the scorer would mistake for decoration.
  for (const auto& word : demo_words()) {
    for (auto family : {DemoFamily::Reverse, DemoFamily::Uppercase, DemoFamily::CountLetters}) {
      DemoTask task;
      task.family = family;
      task.word = word;
      INFO(demo_question(task));
      CHECK(gold_score(demo_prompt(task), " " + demo_answer(task)) == 100.0);
    }
  }
}

TEST_CASE("demo gold: the prompt must be a demo prompt", "[data][demo]") {
  CHECK_THROWS_WITH(gold_score("\n\nHuman: What is love?\n\nAssistant:", " 12"),
                    Catch::Contains("not a demo task prompt") && Catch::Contains("What is love?"));
  CHECK_THROWS_AS(gold_score("What is 7 plus 5?", " 12"), troupe::Error);  // no Human/Assistant frame
}

TEST_CASE("demo task: questions parse back, malformed ones do not", "[data][demo]") {
  auto t = parse_demo_prompt("\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: What is 2 times 3?\n\nAssistant: ");
  REQUIRE(t);
  CHECK(t->family == DemoFamily::Arithmetic);
  CHECK(t->op == DemoOp::Times);
  CHECK(demo_answer(*t) == "6");

  auto sort = parse_demo_question("Sort these numbers from smallest to largest: 12 0 7 3.");
  REQUIRE(sort);
  CHECK(demo_answer(*sort) == "0 3 7 12");
  CHECK(demo_question(*sort) == "Sort these numbers from smallest to largest: 12 0 7 3.");

  auto word = parse_demo_question("Reverse the word zebra.");  // any word, not only the list's
  REQUIRE(word);
  CHECK(demo_answer(*word) == "arbez");

  for (const char* bad : {"What is 2 plus?", "What is 2 plus 3", "What is two plus 3?", "What is 2 divided 3?",
                          "Reverse the word Cat.", "Reverse the word cat dog.", "Sort these numbers from smallest to "
                          "largest: 4.", "Sort these numbers from smallest to largest: 4  5.", "Greet me.", ""})
    CHECK_FALSE(parse_demo_question(bad));
  CHECK_FALSE(parse_demo_prompt("\n\nHuman: What is 2 plus 3?"));
  CHECK_FALSE(parse_demo_prompt("What is 2 plus 3?\n\nAssistant:"));
}
