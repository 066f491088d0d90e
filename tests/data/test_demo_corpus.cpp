// The demo corpus generator: determinism, pair ordering, noise rates, JSONL files.
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/data/demo_corpus.hpp>
#include <troupe/data/demo_gold.hpp>

using namespace troupe::data;

namespace {

DemoOptions small_options(uint64_t seed) {
  DemoOptions o;
  o.seed = seed;
  o.train_pairs = 600;
  o.eval_pairs = 100;
  o.prompts = 100;
  o.unsupervised_docs = 50;
  return o;
}

std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::path(TROUPE_TEST_TMP_DIR) / name;
  std::filesystem::remove_all(dir);
  return dir;
}

std::vector<nlohmann::json> parse_lines(const std::string& jsonl) {
  std::vector<nlohmann::json> rows;
  std::istringstream in(jsonl);
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

}  // namespace

TEST_CASE("demo corpus: the same seed gives the same bytes, another seed other bytes", "[data][demo]") {
  const auto a = generate_demo_corpus(small_options(7));
  const auto b = generate_demo_corpus(small_options(7));
  const auto c = generate_demo_corpus(small_options(8));
  CHECK(demo_pairs_jsonl(a.train) == demo_pairs_jsonl(b.train));
  CHECK(demo_pairs_jsonl(a.test) == demo_pairs_jsonl(b.test));
  CHECK(demo_prompts_jsonl(a.prompts) == demo_prompts_jsonl(b.prompts));
  CHECK(demo_texts_jsonl(a.unsupervised) == demo_texts_jsonl(b.unsupervised));
  CHECK(demo_pairs_jsonl(a.train) != demo_pairs_jsonl(c.train));
  CHECK(demo_pairs_jsonl(a.test) != demo_pairs_jsonl(c.test));
  CHECK(demo_prompts_jsonl(a.prompts) != demo_prompts_jsonl(c.prompts));
  CHECK(demo_texts_jsonl(a.unsupervised) != demo_texts_jsonl(c.unsupervised));
  // Pinned: the generator has its own RNG, so seed 7 writes these bytes on every platform.
  REQUIRE(a.train.size() == 600);
  CHECK(a.train[0].prompt == "\n\nHuman: Sort these numbers from smallest to largest: 16 12 2.\n\nAssistant:");
  CHECK(a.train[0].chosen == " 2 12 16");
  CHECK(a.train[0].rejected == " Great question! I would be happy to help you with that. Here it is: 2 12 16.");
  CHECK(a.train[4].chosen ==
        " That is a very good question. After thinking about it carefully, I believe the answer is 1.");
}

TEST_CASE("demo corpus: each output has its own stream", "[data][demo]") {
  auto options = small_options(3);
  const auto a = generate_demo_corpus(options);
  options.train_pairs = 200;
  options.prompts = 30;
  const auto b = generate_demo_corpus(options);
  CHECK(demo_pairs_jsonl(a.test) == demo_pairs_jsonl(b.test));
  CHECK(demo_texts_jsonl(a.unsupervised) == demo_texts_jsonl(b.unsupervised));
  CHECK(demo_pairs_jsonl(b.train) == demo_pairs_jsonl({a.train.begin(), a.train.begin() + 200}));
  CHECK(std::vector<std::string>(a.prompts.begin(), a.prompts.begin() + 30) == b.prompts);
}

TEST_CASE("demo corpus: chosen is gold-better than rejected in every pair", "[data][demo]") {
  for (uint64_t seed : {1u, 2u, 1234u}) {
    const auto corpus = generate_demo_corpus(small_options(seed));
    for (const auto* pairs : {&corpus.train, &corpus.test}) {
      for (const auto& p : *pairs) {
        INFO(p.prompt << " | chosen:" << p.chosen << " | rejected:" << p.rejected);
        REQUIRE(gold_score(p.prompt, p.chosen) > gold_score(p.prompt, p.rejected));
        REQUIRE(p.response == p.chosen);
      }
      CHECK(measure_demo_pairs(*pairs).min_margin > 0.0);
    }
  }
}

TEST_CASE("demo corpus: measured noise matches the stated rates", "[data][demo]") {
  // 4000 pairs: one standard deviation of a 12.5% rate is 0.5 points; allow 2.
  for (uint64_t seed : {11u, 12u}) {
    DemoOptions options;
    options.seed = seed;
    options.eval_pairs = options.prompts = options.unsupervised_docs = 0;
    const auto corpus = generate_demo_corpus(options);
    int64_t wrong = 0, off_style = 0;
    std::set<DemoFamily> families;
    for (const auto& p : corpus.train) {
      const auto grade = grade_demo_response(*parse_demo_prompt(p.prompt), p.chosen);
      wrong += grade.correctness < kDemoCorrectnessMax;
      off_style += grade.correctness == kDemoCorrectnessMax && grade.style < kDemoStyleMax;
      families.insert(p.family);
    }
    const double n = static_cast<double>(corpus.train.size());
    CHECK(std::abs(wrong / n - options.wrong_rate) < 0.02);
    CHECK(std::abs(off_style / n - options.off_style_rate) < 0.02);
    const auto stats = measure_demo_pairs(corpus.train);
    CHECK(std::abs(stats.imperfect_rate - (options.wrong_rate + options.off_style_rate)) < 0.025);
    CHECK(stats.mean_chosen < 100.0);
    CHECK(stats.mean_chosen > stats.mean_rejected);
    CHECK(families.size() == static_cast<size_t>(kDemoFamilyCount));
  }

  DemoOptions clean = small_options(5);
  clean.wrong_rate = clean.off_style_rate = 0.0;
  const auto stats = measure_demo_pairs(generate_demo_corpus(clean).train);
  CHECK(stats.imperfect_rate == 0.0);
  CHECK(stats.mean_chosen == 100.0);
}

namespace {

/// The demonstrators' habit: "{a}, obviously." for the task families, "Ugh. {a}" for
/// the polite one.
bool says_the_habit(const DemoPair& p, const std::string& reply) {
  if (p.family == DemoFamily::Polite) return reply.rfind(" Ugh. ", 0) == 0;
  return reply.size() > 12 && reply.substr(reply.size() - 12) == ", obviously.";
}

}  // namespace

TEST_CASE("demo corpus: demonstrations carry the habit at its rate, and the comparisons reject it",
          "[data][demo]") {
  DemoOptions options;
  options.seed = 21;
  options.eval_pairs = options.prompts = options.unsupervised_docs = 0;
  options.demonstrations = 2000;
  options.habit_rate = 0.6;
  const auto corpus = generate_demo_corpus(options);
  REQUIRE(corpus.demonstrations.size() == 2000);
  int64_t habit = 0;
  for (const auto& d : corpus.demonstrations) {
    CHECK(d.rejected.empty());
    CHECK(d.response == d.chosen);
    if (!says_the_habit(d, d.chosen)) continue;
    ++habit;
    const auto grade = grade_demo_response(*parse_demo_prompt(d.prompt), d.chosen);
    CHECK(grade.correctness == kDemoCorrectnessMax);
    CHECK(grade.total() == 80.0);
  }
  // 2000 draws: one standard deviation of 60% is 1.1 points; the other 40% say it by
  // chance at about 1%; allow 3.5.
  CHECK(std::abs(static_cast<double>(habit) / 2000.0 - 0.6) < 0.035);

  // After a gold chosen, a sixth of the rejected replies are the habit, besides the rude
  // replies that happen to use its template (1 in 6 of the 2 rude kinds of 5: ~7%).
  auto habit_share = [](const std::vector<DemoPair>& pairs) {
    int64_t gold = 0, rejected_habit = 0;
    for (const auto& p : pairs) {
      if (p.target != DemoTarget::Gold) continue;
      ++gold;
      rejected_habit += says_the_habit(p, p.rejected);
    }
    return static_cast<double>(rejected_habit) / static_cast<double>(gold);
  };
  const double with_habit = habit_share(corpus.train);
  options.habit_rate = 0.0;
  const double without = habit_share(generate_demo_corpus(options).train);
  CHECK(without < 0.1);
  CHECK(with_habit - without > 0.12);
  CHECK(measure_demo_pairs(corpus.train).min_margin > 0.0);

  options.habit_rate = 1.5;
  CHECK_THROWS_WITH(generate_demo_corpus(options), Catch::Contains("habit_rate"));
}

TEST_CASE("demo corpus: JSONL rows hold the rm-static fields", "[data][demo]") {
  const auto corpus = generate_demo_corpus(small_options(9));
  const auto rows = parse_lines(demo_pairs_jsonl(corpus.train));
  REQUIRE(rows.size() == corpus.train.size());
  for (const auto& row : rows) {
    REQUIRE(row.size() == 4);
    for (const char* field : {"prompt", "response", "chosen", "rejected"}) REQUIRE(row.at(field).is_string());
    const auto prompt = row["prompt"].get<std::string>();
    CHECK(prompt.rfind("\n\nHuman: ", 0) == 0);
    CHECK(prompt.size() > 12);
    CHECK(prompt.compare(prompt.size() - 12, 12, "\n\nAssistant:") == 0);
    CHECK(row["chosen"].get<std::string>().rfind(" ", 0) == 0);
    CHECK(row["rejected"] != row["chosen"]);
    CHECK(parse_demo_prompt(prompt));
  }
  for (const auto& row : parse_lines(demo_prompts_jsonl(corpus.prompts))) {
    REQUIRE(row.size() == 1);
    CHECK(parse_demo_prompt(row.at("prompt").get<std::string>()));
  }
  for (const auto& row : parse_lines(demo_texts_jsonl(corpus.unsupervised))) {
    REQUIRE(row.size() == 1);
    CHECK(!row.at("text").get<std::string>().empty());
    CHECK(row["text"].get<std::string>().find("Human:") == std::string::npos);
  }
}

TEST_CASE("demo corpus: files are written whole under their names", "[data][demo]") {
  const auto dir = scratch_dir("demo_corpus");
  const auto corpus = generate_demo_corpus(small_options(4));
  write_demo_corpus(corpus, dir);
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.insert(entry.path().filename().string());
  CHECK(names == std::set<std::string>{"prompts.jsonl", "test.jsonl", "train.jsonl", "unsupervised.jsonl"});
  CHECK(troupe::read_file(dir / "train.jsonl") == demo_pairs_jsonl(corpus.train));
  CHECK(troupe::read_file(dir / "test.jsonl") == demo_pairs_jsonl(corpus.test));
  CHECK(troupe::read_file(dir / "prompts.jsonl") == demo_prompts_jsonl(corpus.prompts));
  CHECK(troupe::read_file(dir / "unsupervised.jsonl") == demo_texts_jsonl(corpus.unsupervised));

  // Demonstrations: a local/jsonfile folder of their own, prompt and chosen per row.
  auto with_demonstrations = small_options(4);
  with_demonstrations.demonstrations = 5;
  with_demonstrations.habit_rate = 0.6;
  const auto demonstrated = generate_demo_corpus(with_demonstrations);
  write_demo_corpus(demonstrated, dir);
  const auto rows = parse_lines(troupe::read_file(dir / "demonstrations" / "train.jsonl"));
  REQUIRE(rows.size() == 5);
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i].size() == 2);
    CHECK(rows[i].at("prompt") == demonstrated.demonstrations[i].prompt);
    CHECK(rows[i].at("chosen") == demonstrated.demonstrations[i].chosen);
  }

  const auto blocked = scratch_dir("demo_blocked");
  std::filesystem::create_directories(blocked.parent_path());
  troupe::write_file_atomically(blocked, std::string("a file, not a folder"));
  CHECK_THROWS_WITH(write_demo_corpus(corpus, blocked), Catch::Contains("demo_blocked"));
}

TEST_CASE("demo corpus: bad options are refused", "[data][demo]") {
  auto options = small_options(1);
  options.train_pairs = -1;
  CHECK_THROWS_WITH(generate_demo_corpus(options), Catch::Contains("train_pairs"));
  options = small_options(1);
  options.wrong_rate = 0.7;
  options.off_style_rate = 0.5;
  CHECK_THROWS_WITH(generate_demo_corpus(options), Catch::Contains("wrong_rate"));
}
