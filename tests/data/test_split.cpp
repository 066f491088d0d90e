// The 3-phase split, the permutation and blending against tests/reference/split_reference.py
// (DeepSpeed-Chat's own index code run with NumPy).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <troupe/common/files.hpp>
#include <troupe/data/phase_samples.hpp>
#include <troupe/data/split.hpp>

#include "data_fixtures.hpp"

using namespace troupe;
using namespace troupe::data;
using nlohmann::json;

namespace {
const json& reference() {
  static const json j = json::parse(read_file(troupe::test::data_fixture("split_reference.json")));
  return j;
}

std::vector<double> weights(const std::string& text) {
  std::vector<double> w;
  size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    w.push_back(std::stod(text.substr(start, comma - start)));
    start = comma + 1;
  }
  return w;
}

/// A dataset whose samples are named `name` + index, so the selection can be read back.
RawDataset named_dataset(const std::string& name, int train_n, int eval_n) {
  RawDataset ds;
  ds.spec = {"local/jsonfile", name};
  for (int i = 0; i < train_n; ++i) ds.train.push_back(Sample{name + std::to_string(i), " c", " r"});
  if (eval_n >= 0) {
    ds.eval.emplace();
    for (int i = 0; i < eval_n; ++i) ds.eval->push_back(Sample{name + "e" + std::to_string(i), " c", " r"});
  }
  return ds;
}

std::vector<std::string> prompts(const std::vector<Sample>& samples) {
  std::vector<std::string> out;
  for (const auto& s : samples) out.push_back(*s.prompt);
  return out;
}
}  // namespace

TEST_CASE("split: REFERENCE.md's worked examples", "[data]") {
  CHECK(split_boundaries(9, {2, 4, 4}) == std::vector<int64_t>{0, 1, 5, 9});
  CHECK(split_boundaries(37, {2, 4, 4}) == std::vector<int64_t>{0, 7, 15 + 7, 37});
  // Half to even: 0.5 * 5 = 2.5 rounds to 2, and 2.5 again to 2; the first chunk absorbs the 1 left over.
  CHECK(split_boundaries(5, {1, 1}) == std::vector<int64_t>{0, 3, 5});
}

TEST_CASE("split: chunk boundaries match DeepSpeed-Chat's for many sizes and weights", "[data]") {
  int checked = 0;
  for (const auto& c : reference().at("boundaries")) {
    const auto n = c.at("n").get<int64_t>();
    const auto expected = c.at("boundaries").get<std::vector<int64_t>>();
    INFO("n = " << n << ", split " << c.at("split").get<std::string>());
    CHECK(split_boundaries(n, weights(c.at("split"))) == expected);
    ++checked;
  }
  CHECK(checked > 500);
}

TEST_CASE("split: the permutation is NumPy's RandomState(seed).shuffle", "[data]") {
  for (const auto& c : reference().at("permutations")) {
    const auto seed = c.at("seed").get<uint32_t>();
    const auto n = c.at("n").get<int64_t>();
    INFO("seed " << seed << ", n " << n);
    CHECK(shuffled_indices(seed, n) == c.at("indices").get<std::vector<int64_t>>());
  }
  // Deterministic, and a different seed gives a different order.
  CHECK(shuffled_indices(7, 1000) == shuffled_indices(7, 1000));
  CHECK(shuffled_indices(7, 1000) != shuffled_indices(8, 1000));
}

TEST_CASE("split: a dataset without eval gets 9:1, then each side the phase chunks", "[data]") {
  for (const auto& c : reference().at("phases_without_eval")) {
    const auto seed = c.at("seed").get<uint32_t>();
    const int n = c.at("n");
    const int phase = c.at("phase");
    INFO("seed " << seed << ", n " << n << ", phase " << phase);
    SplitOptions split;
    split.seed = seed;
    auto got = select_phase({named_dataset("", n, -1)}, {}, split, phase);
    std::vector<std::string> train, eval;
    for (auto i : c.at("train").get<std::vector<int>>()) train.push_back(std::to_string(i));
    for (auto i : c.at("eval").get<std::vector<int>>()) eval.push_back(std::to_string(i));
    CHECK(prompts(got.train) == train);
    CHECK(prompts(got.eval) == eval);
    REQUIRE(got.reports.size() == 1);
    CHECK(got.reports[0].eval_split_from_train);
  }
}

TEST_CASE("split: proportions of the three phases cover every sample once", "[data]") {
  SplitOptions split;
  std::vector<Sample> all;
  std::vector<int64_t> sizes;
  for (int phase = 1; phase <= 3; ++phase) {
    auto got = select_phase({named_dataset("x", 1000, 100)}, {}, split, phase);
    sizes.push_back(static_cast<int64_t>(got.train.size()));
    all.insert(all.end(), got.train.begin(), got.train.end());
  }
  CHECK(sizes == std::vector<int64_t>{200, 400, 400});
  auto names = prompts(all);
  std::sort(names.begin(), names.end());
  CHECK(std::unique(names.begin(), names.end()) == names.end());
  CHECK(names.size() == 1000);
}

TEST_CASE("split: step 1 may take all its samples from --sft_only_data_path", "[data]") {
  SplitOptions split;
  split.data_split = {0, 5, 5};
  auto got = select_phase({named_dataset("a", 20, 6)}, {named_dataset("s", 7, -1)}, split, 1);
  CHECK_FALSE(got.train.empty());
  for (const auto& sample : got.train) CHECK(sample.prompt.value_or("").rfind("s", 0) == 0);
  // Without sft-only data an empty step 1 is refused, naming the split.
  CHECK_THROWS_WITH(select_phase({named_dataset("a", 20, 6)}, {}, split, 1), Catch::Contains("--data_split 0,5,5"));
  CHECK_FALSE(select_phase({named_dataset("a", 20, 6)}, {}, split, 2).train.empty());
}

TEST_CASE("split: blending and --sft_only_data_path match DeepSpeed-Chat's order", "[data]") {
  for (const auto& c : reference().at("blends")) {
    const int phase = c.at("phase");
    INFO("phase " << phase);
    SplitOptions split;
    split.seed = c.at("seed");
    auto got = select_phase({named_dataset("a", 20, 6), named_dataset("b", 13, -1)}, {named_dataset("s", 7, -1)}, split, phase);
    CHECK(prompts(got.train) == c.at("train").get<std::vector<std::string>>());
    CHECK(prompts(got.eval) == c.at("eval").get<std::vector<std::string>>());
    CHECK(got.reports.size() == (phase == 1 ? 3u : 2u));
  }
}
