// Tokenized caches: contents, reuse, invalidation, rank-0 build with waiting ranks, no temp files.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include <catch2/catch.hpp>

#include <troupe/common/error.hpp>
#include <troupe/data/pipeline.hpp>
#include <troupe/models/tokenizer.hpp>

#include "data_fixtures.hpp"

using namespace troupe;
using namespace troupe::data;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using troupe::test::data_fixture;
using troupe::test::data_scratch;

namespace {

/// rm-static (folder) blended with a copy of webgpt in the scratch folder, so a test
/// can touch it.
PipelineOptions options(const fs::path& dir) {
  fs::copy_file(data_fixture("webgpt_comparisons.jsonl"), dir / "webgpt.jsonl", fs::copy_options::overwrite_existing);
  PipelineOptions o;
  o.data_path = {parse_dataset_spec("Dahoas/rm-static=" + data_fixture("rm-static").string()),
                 parse_dataset_spec("openai/webgpt_comparisons=" + (dir / "webgpt.jsonl").string())};
  o.split.data_split = {1, 1, 1};
  o.tokenizer_dir = troupe::test::tokenizer_fixture();
  o.cache_dir = dir / "cache";
  o.lengths.max_seq_len = 64;
  o.lengths.max_prompt_seq_len = 64;
  return o;
}

std::vector<std::string> cache_files(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<int64_t> ids(TokenSpan span) { return {span.begin(), span.end()}; }

}  // namespace

TEST_CASE("cache: step 1 holds BOS + prompt + chosen + EOS for every selected sample", "[data]") {
  auto dir = data_scratch("cache_contents");
  auto o = options(dir);
  auto d = load_phase_data(o, 1);
  CHECK(d.built);
  auto tok = models::load_tokenizer(o.tokenizer_dir);
  // The same selection, read independently of the cache.
  std::vector<RawDataset> raw;
  for (const auto& spec : o.data_path) raw.push_back(read_dataset(spec));
  const auto samples = select_phase(raw, {}, o.split, 1);
  REQUIRE(d.train.size() == static_cast<int64_t>(samples.train.size()));
  REQUIRE(d.eval.size() == static_cast<int64_t>(samples.eval.size()));
  CHECK(d.train_stats.kept == d.train.size());
  CHECK(d.train.has(Field::chosen));
  CHECK_FALSE(d.train.has(Field::rejected));
  CHECK_THROWS_WITH(d.train.get(Field::prompt, 0), Contains("field 'prompt' is not stored"));
  for (int64_t i = 0; i < d.train.size(); ++i) {
    const auto& s = samples.train[static_cast<size_t>(i)];
    auto expected = tok->encode(*s.prompt + *s.chosen, true);
    expected.push_back(*tok->eos_token_id());
    if (static_cast<int64_t>(expected.size()) > o.lengths.max_seq_len) expected.resize(static_cast<size_t>(o.lengths.max_seq_len));
    CHECK(ids(d.train.get(Field::chosen, i)) == expected);
  }
  // The template puts BOS first; the text decodes back.
  auto first = ids(d.train.get(Field::chosen, 0));
  CHECK(first.front() == *tok->bos_token_id());
  CHECK(d.reports.size() == 2);
}

TEST_CASE("cache: reused when nothing changed, rebuilt when a file, the seed or a length changes", "[data]") {
  auto dir = data_scratch("cache_reuse");
  auto o = options(dir);
  auto first = load_phase_data(o, 2);
  CHECK(first.built);
  CHECK(first.train.has(Field::chosen));
  CHECK(first.train.has(Field::rejected));
  const auto path = first.train.path();
  auto again = load_phase_data(o, 2);
  CHECK_FALSE(again.built);
  CHECK(again.train.path() == path);
  CHECK(again.train.size() == first.train.size());

  // Touch the webgpt copy: a new mtime is a new key.
  fs::last_write_time(dir / "webgpt.jsonl", fs::last_write_time(dir / "webgpt.jsonl") + std::chrono::seconds(5));
  auto touched = load_phase_data(o, 2);
  CHECK(touched.built);
  CHECK(touched.train.path() != path);

  o.split.seed = 99;
  auto reseeded = load_phase_data(o, 2);
  CHECK(reseeded.built);
  o.lengths.max_seq_len = 16;
  auto shorter = load_phase_data(o, 2);
  CHECK(shorter.built);
  CHECK(shorter.train_stats.truncated > 0);
  for (int64_t i = 0; i < shorter.train.size(); ++i) CHECK(shorter.train.get(Field::rejected, i).size <= 16);

  // Four builds, two files each, and no temporary file left behind.
  auto files = cache_files(o.cache_dir);
  CHECK(files.size() == 8);
  for (const auto& f : files) CHECK_THAT(f, Catch::EndsWith(".trpdata"));
}

TEST_CASE("cache: step 3 drops over-long prompts and counts them", "[data]") {
  auto dir = data_scratch("cache_phase3");
  auto o = options(dir);
  o.split.data_split = {0, 0, 1};
  o.lengths.max_prompt_seq_len = 1000;
  auto all = load_phase_data(o, 3);
  CHECK(all.train_stats.prompt_too_long == 0);
  // A limit at the shortest prompt keeps that one and drops the longer ones.
  int64_t shortest = 1000, longest = 0;
  for (int64_t i = 0; i < all.train.size(); ++i) {
    shortest = std::min(shortest, all.train.get(Field::prompt, i).size);
    longest = std::max(longest, all.train.get(Field::prompt, i).size);
  }
  REQUIRE(shortest < longest);
  o.lengths.max_prompt_seq_len = shortest;
  auto d = load_phase_data(o, 3);
  const auto& st = d.train_stats;
  CHECK(st.samples == st.kept + st.prompt_too_long);
  CHECK(st.prompt_too_long > 0);
  CHECK(st.kept > 0);
  for (int64_t i = 0; i < d.train.size(); ++i) CHECK(d.train.get(Field::prompt, i).size == shortest);
}

TEST_CASE("cache: a damaged file is rejected with its name and rebuilt by rank 0", "[data]") {
  auto dir = data_scratch("cache_damaged");
  auto o = options(dir);
  auto built = load_phase_data(o, 1);
  const auto path = built.train.path();
  built = PhaseData{};
  troupe::test::write_text(path, "TRPDATA garbage");
  CHECK_THROWS_WITH(PhaseDataset::open(path), Contains(path.string()) && Contains("not a valid troupe tokenized cache"));
  auto rebuilt = load_phase_data(o, 1);
  CHECK(rebuilt.built);
  CHECK(rebuilt.train.size() > 0);
}

TEST_CASE("cache: ranks > 0 wait for rank 0's files, or time out with a clear error", "[data]") {
  auto dir = data_scratch("cache_ranks");
  auto o = options(dir);
  o.world_size = 2;
  auto waiting = o;
  waiting.rank = 1;
  waiting.wait_timeout_s = 60;
  waiting.poll_interval_s = 0.02;
  auto rank1 = std::async(std::launch::async, [&] { return load_phase_data(waiting, 1); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto rank0 = load_phase_data(o, 1);
  auto got = rank1.get();
  CHECK(rank0.built);
  CHECK_FALSE(got.built);
  CHECK(got.train.size() == rank0.train.size());
  CHECK(got.train.key() == rank0.train.key());

  waiting.split.seed = 5;  // a key nobody builds
  waiting.wait_timeout_s = 0.2;
  CHECK_THROWS_WITH(load_phase_data(waiting, 1), Contains("rank 1: waited") && Contains("that rank 0 builds"));
}

// Run by tests/data/extra.cmake as two processes at once (TROUPE_TEST_RANK=0 and 1),
// sharing TROUPE_TEST_CACHE_DIR: rank 1 starts waiting before rank 0 builds.
TEST_CASE("cache: two processes, rank 0 builds and rank 1 loads", "[.cache_two_ranks][multiprocess]") {
  const char* rank = std::getenv("TROUPE_TEST_RANK");
  const char* dir = std::getenv("TROUPE_TEST_CACHE_DIR");
  REQUIRE(rank);
  REQUIRE(dir);
  PipelineOptions o;
  o.data_path = {parse_dataset_spec("Dahoas/rm-static=" + data_fixture("rm-static").string()),
                 parse_dataset_spec("openai/webgpt_comparisons=" + data_fixture("webgpt_comparisons.jsonl").string())};
  o.split.data_split = {1, 1, 1};
  o.tokenizer_dir = troupe::test::tokenizer_fixture();
  o.cache_dir = dir;
  o.rank = std::atoi(rank);
  o.world_size = 2;
  o.wait_timeout_s = 120;
  o.poll_interval_s = 0.05;
  if (o.rank == 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto d = load_phase_data(o, 2);
  CHECK(d.built == (o.rank == 0));
  CHECK(d.train.size() == 2);
  CHECK(d.train.has(Field::rejected));
}
