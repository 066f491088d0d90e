// Every bad-input case gets an error naming the file, line and field, and what was expected.
#include <catch2/catch.hpp>

#include <troupe/common/error.hpp>
#include <troupe/data/dataset.hpp>
#include <troupe/data/phase_samples.hpp>
#include <troupe/data/split.hpp>

#include "data_fixtures.hpp"

using namespace troupe;
using namespace troupe::data;
using Catch::Matchers::Contains;
using troupe::test::data_scratch;
using troupe::test::write_text;

namespace {
RawDataset read_text(const std::string& schema, const std::string& file, const std::string& text, bool skip = false) {
  // One folder per file: ctest runs the test cases as parallel processes, and data_scratch empties its folder.
  auto path = write_text(data_scratch("bad_input_" + file) / file, text);
  ReadOptions options;
  options.skip_bad_samples = skip;
  return read_dataset(parse_dataset_spec(schema + "=" + path.string()), options);
}
const std::string good = R"({"prompt": "\n\nHuman: hi\n\nAssistant:", "chosen": " hello", "rejected": " no"})";
}  // namespace

TEST_CASE("bad input: a malformed JSON line names file and line", "[data]") {
  const std::string text = good + "\n" + R"({"prompt": "x", "chosen": )" + "\n" + good + "\n";
  CHECK_THROWS_WITH(read_text("Dahoas/rm-static", "bad.jsonl", text),
                    Contains("bad.jsonl:2: malformed JSON") && Contains("--skip_bad_samples"));
}

TEST_CASE("bad input: a missing field names file, line and field", "[data]") {
  const std::string text = good + "\n" + good + "\n" + R"({"prompt": "p", "rejected": " r"})" + "\n";
  CHECK_THROWS_WITH(read_text("Dahoas/rm-static", "missing.jsonl", text),
                    Contains("missing.jsonl:3: field 'chosen': missing (expected a string)"));
}

TEST_CASE("bad input: a wrongly typed field says what was expected", "[data]") {
  CHECK_THROWS_WITH(read_text("openai/webgpt_comparisons", "webgpt.jsonl",
                              R"({"question": {"full_text": "q"}, "answer_0": "a", "answer_1": "b", "score_0": "high", "score_1": 0})"),
                    Contains("webgpt.jsonl:1: field 'score_0': expected a number, got a string"));
  CHECK_THROWS_WITH(read_text("openai/webgpt_comparisons", "webgpt2.jsonl",
                              R"({"question": "q", "answer_0": "a", "answer_1": "b", "score_0": 1, "score_1": 0})"),
                    Contains("webgpt2.jsonl:1: field 'question.full_text': missing"));
  CHECK_THROWS_WITH(read_text("stanfordnlp/SHP", "shp.jsonl",
                              R"({"history": "h", "human_ref_A": "a", "human_ref_B": "b", "labels": 2})"),
                    Contains("shp.jsonl:1: field 'labels': expected 0 or 1, got 2"));
  CHECK_THROWS_WITH(read_text("local/jsonfile", "local.jsonl", R"({"prompt": 5})"),
                    Contains("local.jsonl:1: field 'prompt': expected a string or null, got a number"));
  CHECK_THROWS_WITH(read_text("local/jsonfile", "row.jsonl", "[1, 2]\n"),
                    Contains("row.jsonl:1: expected a JSON object, got number"));
}

TEST_CASE("bad input: rows of a JSON array keep their line numbers", "[data]") {
  const std::string text = "[\n  " + good + ",\n  {\"prompt\": \"p\",\n   \"chosen\": 3, \"rejected\": \"r\"}\n]\n";
  CHECK_THROWS_WITH(read_text("Dahoas/rm-static", "array.json", text),
                    Contains("array.json:3: field 'chosen': expected a string, got a number"));
  CHECK_THROWS_WITH(read_text("Dahoas/rm-static", "open.json", "[\n" + good + ",\n" + good + "\n"),
                    Contains("open.json") && Contains("never closes (expected ']')"));
}

TEST_CASE("bad input: an empty file", "[data]") {
  CHECK_THROWS_WITH(read_text("Dahoas/rm-static", "empty.jsonl", "\n  \n"),
                    Contains("empty.jsonl: empty file (expected JSON lines or a JSON array of objects)"));
  CHECK_THROWS_WITH(read_text("Dahoas/rm-static", "empty.json", "[ ]"), Contains("empty.json: no rows"));
}

TEST_CASE("bad input: an unknown schema lists the known ones", "[data]") {
  CHECK_THROWS_WITH(parse_dataset_spec("Foo/bar=/tmp/x"),
                    Contains("--data_path 'Foo/bar=/tmp/x': unknown dataset schema 'Foo/bar'") &&
                        Contains("known: Dahoas/full-hh-rlhf, Dahoas/rm-static") && Contains("stanfordnlp/SHP"));
  CHECK_THROWS_WITH(parse_dataset_spec("/data/rm-static"), Contains("expected SCHEMA=PATH"));
}

TEST_CASE("bad input: missing paths and folders without a train file", "[data]") {
  auto dir = data_scratch("no_train");
  write_text(dir / "test.jsonl", good);
  CHECK_THROWS_WITH(read_dataset(parse_dataset_spec("Dahoas/rm-static=" + dir.string())),
                    Contains("has no train.jsonl or train.json"));
  CHECK_THROWS_WITH(read_dataset(parse_dataset_spec("Dahoas/rm-static=" + (dir / "nope").string())),
                    Contains("does not exist"));
  write_text(dir / "train.jsonl", good);
  write_text(dir / "train.json", good);
  CHECK_THROWS_WITH(read_dataset(parse_dataset_spec("Dahoas/rm-static=" + dir.string())), Contains("ambiguous split files"));
}

TEST_CASE("bad input: --skip_bad_samples counts and skips per-sample errors", "[data]") {
  const std::string text = good + "\n{broken\n" + R"({"prompt": "p", "chosen": 1, "rejected": "r"})" + "\n" + good + "\n";
  auto ds = read_text("Dahoas/rm-static", "skip.jsonl", text, /*skip=*/true);
  CHECK(ds.train.size() == 2);
  CHECK(ds.report.rows == 4);
  CHECK(ds.report.bad == 2);
  REQUIRE(ds.report.bad_examples.size() == 2);
  CHECK_THAT(ds.report.bad_examples[0], Contains("skip.jsonl:2: malformed JSON"));
  CHECK_THAT(ds.report.bad_examples[1], Contains("skip.jsonl:3: field 'chosen'"));
  // File-level problems are never skipped.
  CHECK_THROWS_WITH(read_text("Dahoas/rm-static", "empty2.jsonl", "", true), Contains("empty file"));
}

TEST_CASE("bad input: --data_split values", "[data]") {
  CHECK_THROWS_WITH(parse_data_split("2,4"), Contains("--data_split '2,4': 2 weights (expected three"));
  CHECK_THROWS_WITH(parse_data_split("2,x,4"), Contains("'x' is not a non-negative number"));
  CHECK_THROWS_WITH(parse_data_split("2,-1,4"), Contains("'-1' is not a non-negative number"));
  CHECK_THROWS_WITH(parse_data_split("0,0,0"), Contains("weights sum to 0"));
  CHECK(parse_data_split("2,4,4") == std::vector<double>{2, 4, 4});
}

TEST_CASE("bad input: a split that leaves a phase empty", "[data]") {
  std::string text;
  for (int i = 0; i < 12; ++i) text += good + "\n";
  auto ds = read_text("Dahoas/rm-static", "small.jsonl", text);
  SplitOptions split;
  split.data_split = {10, 0, 0};
  CHECK_NOTHROW(select_phase({ds}, {}, split, 1));
  CHECK_THROWS_WITH(select_phase({ds}, {}, split, 2),
                    Contains("small.jsonl train: --data_split 10,0,0 leaves phase 2 with no train samples") &&
                        Contains("chunks 11,0,0"));
  split.data_split = {2, 4, 4};
  auto two = read_text("Dahoas/rm-static", "two.jsonl", good + "\n" + good + "\n");
  CHECK_THROWS_WITH(select_phase({two}, {}, split, 1), Contains("leaves phase 1 with no train samples"));
}
