// Collators: padding sides, masks and labels on hand-computed cases; unsupervised blocks.
#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/data/collate.hpp>
#include <troupe/data/unsupervised.hpp>
#include <troupe/models/tokenizer.hpp>

#include "data_fixtures.hpp"

using namespace troupe;
using namespace troupe::data;
using Catch::Matchers::Contains;

namespace {
TokenSpan span(const std::vector<int32_t>& v) { return {v.data(), static_cast<int64_t>(v.size())}; }
torch::Tensor rows(std::vector<std::vector<int64_t>> r) {
  std::vector<torch::Tensor> t;
  for (auto& row : r) t.push_back(torch::tensor(row, torch::kLong));
  return torch::stack(t);
}
}  // namespace

TEST_CASE("collate step 1: right padding, labels -100 on padding only, long rows cut", "[data]") {
  std::vector<int32_t> a{5, 6, 7}, b{8}, c{1, 2, 3, 4, 5, 6};
  auto batch = make_step1_batch({span(a), span(b), span(c)}, 4, 0);
  CHECK(torch::equal(batch.input_ids, rows({{5, 6, 7, 0}, {8, 0, 0, 0}, {1, 2, 3, 4}})));
  CHECK(torch::equal(batch.attention_mask, rows({{1, 1, 1, 0}, {1, 0, 0, 0}, {1, 1, 1, 1}})));
  CHECK(torch::equal(batch.labels, rows({{5, 6, 7, -100}, {8, -100, -100, -100}, {1, 2, 3, 4}})));
  // pad == eos: the sequence's own EOS keeps its label (the mask decides, not the id).
  std::vector<int32_t> with_eos{9, 2};
  auto same = make_step1_batch({span(with_eos)}, 3, 2);
  CHECK(torch::equal(same.labels, rows({{9, 2, -100}})));
  CHECK(batch.input_ids.scalar_type() == torch::kLong);
}

TEST_CASE("collate step 2: chosen rows then rejected rows, right padded", "[data]") {
  std::vector<int32_t> c0{1, 2, 3}, c1{1, 4}, r0{1, 2}, r1{1, 4, 5, 6, 7};
  auto batch = make_step2_batch({span(c0), span(c1)}, {span(r0), span(r1)}, 4, 0);
  CHECK(batch.pairs == 2);
  CHECK(torch::equal(batch.input_ids, rows({{1, 2, 3, 0}, {1, 4, 0, 0}, {1, 2, 0, 0}, {1, 4, 5, 6}})));
  CHECK(torch::equal(batch.attention_mask, rows({{1, 1, 1, 0}, {1, 1, 0, 0}, {1, 1, 0, 0}, {1, 1, 1, 1}})));
  CHECK_THROWS_WITH(make_step2_batch({span(c0)}, {}, 4, 0), Contains("1 chosen but 0 rejected"));
}

TEST_CASE("collate step 3: prompts left padded, never cut", "[data]") {
  std::vector<int32_t> a{1, 2}, b{3, 4, 5}, long_prompt{1, 2, 3, 4, 5};
  auto batch = make_step3_batch({span(a), span(b)}, 4, 0);
  CHECK(torch::equal(batch.input_ids, rows({{0, 0, 1, 2}, {0, 3, 4, 5}})));
  CHECK(torch::equal(batch.attention_mask, rows({{0, 0, 1, 1}, {0, 1, 1, 1}})));
  CHECK_THROWS_WITH(make_step3_batch({span(long_prompt)}, 4, 0),
                    Contains("prompt 0 has 5 tokens, over max_prompt_seq_len 4"));
}

TEST_CASE("unsupervised: texts tokenized, concatenated, cut into blocks; labels = inputs", "[data]") {
  auto tok = models::load_tokenizer(troupe::test::tokenizer_fixture());
  auto dir = troupe::test::data_scratch("unsup");
  auto file = troupe::test::write_text(dir / "corpus.txt", "the cat sat on the mat\n\nthe dog ran far away\r\nbirds sing\n");
  auto texts = read_text_corpus(file);
  REQUIRE(texts == std::vector<std::string>{"the cat sat on the mat", "the dog ran far away", "birds sing"});
  std::vector<int64_t> all;
  for (const auto& t : texts)
    for (auto id : tok->encode(t, true)) all.push_back(id);
  const int64_t block = 5;
  auto blocks = make_unsupervised_blocks(texts, *tok, block);
  CHECK(blocks.size() == static_cast<int64_t>(all.size()) / block);
  auto batch = make_unsupervised_batch(blocks, {1, 0});
  REQUIRE(batch.input_ids.sizes() == torch::IntArrayRef({2, block}));
  for (int64_t t = 0; t < block; ++t) {
    CHECK(batch.input_ids[0][t].item<int64_t>() == all[static_cast<size_t>(block + t)]);
    CHECK(batch.input_ids[1][t].item<int64_t>() == all[static_cast<size_t>(t)]);
  }
  CHECK(torch::equal(batch.labels, batch.input_ids));
  CHECK(batch.attention_mask.sum().item<int64_t>() == 2 * block);
  CHECK_THROWS_WITH(make_unsupervised_blocks({"hi"}, *tok, 1000), Contains("fewer than one block of 1000"));
  auto jsonl = troupe::test::write_text(dir / "corpus.jsonl", "{\"text\": \"a b\"}\n{\"title\": \"x\"}\n");
  CHECK_THROWS_WITH(read_text_corpus(jsonl), Contains("corpus.jsonl:2: field 'text': missing"));
}
