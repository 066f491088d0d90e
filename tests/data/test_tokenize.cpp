// tokenize_phase against tests/reference/tokenize_reference.py (Hugging Face tokenizer,
// DeepSpeed-Chat's per-step sequence rules) on the adapters' fixtures.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <troupe/common/files.hpp>
#include <troupe/data/dataset.hpp>
#include <troupe/data/tokenize.hpp>
#include <troupe/models/tokenizer.hpp>

#include "data_fixtures.hpp"

using namespace troupe;
using namespace troupe::data;
using nlohmann::json;

namespace {
std::vector<std::vector<int64_t>> widen(const std::vector<std::vector<int32_t>>& rows) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& r : rows) out.emplace_back(r.begin(), r.end());
  return out;
}
}  // namespace

TEST_CASE("tokenize: steps 1-3 token ids match the Hugging Face reference", "[data]") {
  const auto ref = json::parse(read_file(troupe::test::data_fixture("tokenize_reference.json")));
  auto tok = models::load_tokenizer(troupe::test::tokenizer_fixture());
  LengthOptions lengths;
  lengths.max_seq_len = ref.at("max_seq_len");
  lengths.max_prompt_seq_len = ref.at("max_prompt_seq_len");
  for (const auto& c : ref.at("cases")) {
    const std::string schema = c.at("schema");
    INFO(schema);
    auto ds = read_dataset(parse_dataset_spec(schema + "=" + troupe::test::data_fixture(c.at("path")).string()));
    auto p1 = tokenize_phase(ds.train, 1, *tok, lengths);
    CHECK(widen(p1.fields[static_cast<int>(Field::chosen)]) == c.at("phase1").get<std::vector<std::vector<int64_t>>>());
    auto p2 = tokenize_phase(ds.train, 2, *tok, lengths);
    std::vector<std::vector<int64_t>> chosen, rejected;
    for (const auto& pair : c.at("phase2")) {
      chosen.push_back(pair.at("chosen"));
      rejected.push_back(pair.at("rejected"));
    }
    CHECK(widen(p2.fields[static_cast<int>(Field::chosen)]) == chosen);
    CHECK(widen(p2.fields[static_cast<int>(Field::rejected)]) == rejected);
    auto p3 = tokenize_phase(ds.train, 3, *tok, lengths);
    CHECK(widen(p3.fields[static_cast<int>(Field::prompt)]) == c.at("phase3").get<std::vector<std::vector<int64_t>>>());
    CHECK(p3.stats.prompt_too_long == c.at("phase3_dropped").get<int64_t>());
    CHECK(p3.stats.kept + p3.stats.prompt_too_long == static_cast<int64_t>(ds.train.size()));
  }
}

TEST_CASE("tokenize: samples missing what a step needs are dropped and counted", "[data]") {
  auto tok = models::load_tokenizer(troupe::test::tokenizer_fixture());
  std::vector<Sample> samples{{"p", " c", " r"}, {"p", " c", std::nullopt}, {"p", std::nullopt, std::nullopt},
                              {std::nullopt, " c", " r"}};
  auto p1 = tokenize_phase(samples, 1, *tok, {});
  CHECK(p1.stats.kept == 3);
  CHECK(p1.stats.no_chosen == 1);
  auto p2 = tokenize_phase(samples, 2, *tok, {});
  CHECK(p2.stats.kept == 2);
  CHECK(p2.stats.no_chosen == 1);
  CHECK(p2.stats.no_rejected == 1);
  auto p3 = tokenize_phase(samples, 3, *tok, {});
  CHECK(p3.stats.kept == 3);
  CHECK(p3.stats.no_prompt == 1);
}
