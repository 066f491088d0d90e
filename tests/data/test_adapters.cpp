// Each adapter on a hand-written fixture in its dataset's real schema.
#include <algorithm>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <troupe/data/adapters.hpp>
#include <troupe/data/dataset.hpp>

#include "data_fixtures.hpp"

using namespace troupe;
using namespace troupe::data;
using troupe::test::data_fixture;

namespace {
RawDataset read(const std::string& schema, const std::string& name) {
  return read_dataset(parse_dataset_spec(schema + "=" + data_fixture(name).string()));
}
}  // namespace

TEST_CASE("Dahoas/rm-static: folder with train and test files, prompt carries the format", "[data]") {
  auto ds = read("Dahoas/rm-static", "rm-static");
  REQUIRE(ds.train.size() == 3);
  REQUIRE(ds.eval.has_value());
  REQUIRE(ds.eval->size() == 1);
  CHECK(*ds.train[1].prompt == "\n\nHuman: What kind of noises did dinosaurs make?\n\nAssistant:");
  CHECK(*ds.train[1].rejected == " They roared like lions.");
  CHECK(*ds.eval->front().chosen == " Why did the chicken cross the road? To get to the other side.");
  CHECK(ds.report.rows == 4);
  CHECK(ds.report.samples == 4);
  CHECK(ds.files.eval->path.filename() == "test.jsonl");
}

TEST_CASE("Dahoas/full-hh-rlhf: a JSON array file", "[data]") {
  auto ds = read("Dahoas/full-hh-rlhf", "full-hh-rlhf");
  REQUIRE(ds.train.size() == 2);
  CHECK_FALSE(ds.eval.has_value());
  CHECK(*ds.train[1].chosen == " The capital of France is Paris.");
  CHECK(*ds.train[1].rejected == " London, [I think].");
}

TEST_CASE("Dahoas/synthetic-instruct-gptj-pairwise: bare fields get the conversation format", "[data]") {
  auto ds = read("Dahoas/synthetic-instruct-gptj-pairwise", "synthetic-instruct-gptj-pairwise.jsonl");
  REQUIRE(ds.train.size() == 2);
  CHECK(*ds.train[1].prompt == "\n\nHuman: What type of wine goes best with steak.\n\nAssistant:");
  CHECK(*ds.train[1].chosen == " A full-bodied red such as Cabernet Sauvignon goes best with steak.");
  CHECK(*ds.train[1].rejected == " Steak is best eaten rare.");
}

TEST_CASE("yitingxie/rlhf-reward-datasets: the Assistant turn moves into the prompt", "[data]") {
  auto ds = read("yitingxie/rlhf-reward-datasets", "yitingxie-rlhf-reward-datasets.jsonl");
  REQUIRE(ds.train.size() == 1);
  const auto& s = ds.train[0];
  CHECK(*s.prompt == "\n\nHuman: Do you know why turkeys became the official food of thanksgiving?\n\nAssistant:");
  CHECK(*s.chosen == " To be honest, I don’t know anything about that.");
  CHECK(*s.rejected == " I know that the American Indians were the first to celebrate the first thanksgiving.");
  // prompt + chosen is the dataset's own prompt + chosen text.
  CHECK(*s.prompt + *s.chosen ==
        "\n\nHuman: Do you know why turkeys became the official food of thanksgiving?\n\nAssistant: To be honest, I don’t know anything about that.");
}

TEST_CASE("openai/webgpt_comparisons: higher score chosen, citations stripped, ties have no rejected", "[data]") {
  auto ds = read("openai/webgpt_comparisons", "webgpt_comparisons.jsonl");
  REQUIRE(ds.train.size() == 3);
  CHECK(*ds.train[0].prompt == "\n\nHuman: Why do we get goosebumps?\n\nAssistant:");
  CHECK(*ds.train[0].chosen == " It is a reflex that made our furry ancestors look bigger to threats, and kept them warm.");
  CHECK(*ds.train[0].rejected == " Goosebumps are a reflex from our ancestors. Raising hair made them look bigger.");
  CHECK(*ds.train[1].chosen == " Electrons spin.");
  CHECK(*ds.train[1].rejected == " Magic.");
  CHECK(*ds.train[2].chosen == " Shakespeare.");
  CHECK_FALSE(ds.train[2].rejected.has_value());
}

TEST_CASE("strip_citations keeps brackets that are not citations", "[data]") {
  CHECK(strip_citations("a [1] b [2, 3] c [4-5][6].") == "a b c.");
  CHECK(strip_citations("[1]Start") == "Start");
  CHECK(strip_citations("keep [this] and [x1]") == "keep [this] and [x1]");
}

TEST_CASE("stanfordnlp/SHP: labels 1 means A preferred, 0 means B", "[data]") {
  auto ds = read("stanfordnlp/SHP", "shp.jsonl");
  REQUIRE(ds.train.size() == 2);
  CHECK(ds.train[0].prompt->rfind("\n\nHuman: In an interview", 0) == 0);
  CHECK(*ds.train[0].chosen == " Yes, publish or perish rules academia now.");
  CHECK(*ds.train[0].rejected == " Nobody knows.");
  CHECK(*ds.train[1].chosen == " Rayleigh scattering: shorter wavelengths scatter more.");
  CHECK(*ds.train[1].rejected == " Because it reflects the ocean.");
}

TEST_CASE("local/jsonfile: fields used as written, absent and null allowed", "[data]") {
  auto ds = read("local/jsonfile", "local.json");
  REQUIRE(ds.train.size() == 3);
  CHECK(*ds.train[0].rejected == " Go away.");
  CHECK_FALSE(ds.train[1].rejected.has_value());
  CHECK_FALSE(ds.train[2].chosen.has_value());
  CHECK(*ds.train[2].prompt == "\n\nHuman: Name a color.\n\nAssistant:");
  CHECK(usable_in_phase(ds.train[1], 1));
  CHECK_FALSE(usable_in_phase(ds.train[1], 2));
  CHECK_FALSE(usable_in_phase(ds.train[2], 1));
  CHECK(usable_in_phase(ds.train[2], 3));
}

TEST_CASE("registry: known schemas, custom adapters", "[data]") {
  auto names = known_schemas();
  CHECK(names.size() >= 7);
  CHECK(std::find(names.begin(), names.end(), "stanfordnlp/SHP") != names.end());
  register_adapter("test/upper", [](const nlohmann::json&) -> std::optional<Sample> { return std::nullopt; });
  auto ds = read("test/upper", "shp.jsonl");
  CHECK(ds.train.empty());
  CHECK(ds.report.declined == 2);
}
